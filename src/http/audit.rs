//! The audit log: browse and filter it, check its hash chain, download it as CSV or JSON Lines.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::Response,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    AppState,
    extract::{Auth, Json, Query},
    reports::csv_record,
};
use crate::{
    access::{self, Action},
    audit::{self, AuditEntry, AuditFilter, Verification},
    error::Result,
    pagination::{Page, PageParams, PageRequest},
};

/// Security-relevant actions, newest first, narrowed by the filters (admins).
#[utoipa::path(get, path = "/audit-log", tag = "audit", params(PageParams, AuditFilter),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of audit entries", body = Page<AuditEntry>)))]
pub async fn audit_log(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(page): Query<PageParams>,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<Page<AuditEntry>>> {
    let filter = filter.validate()?;
    Ok(Json(
        audit::list(&s.db, &ctx, &filter, page.validate()?).await?,
    ))
}

/// Checks the organisation's hash chain and names the first broken link (admins).
#[utoipa::path(get, path = "/audit-log/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "What the check found", body = Verification)))]
pub async fn verify_audit_log(
    State(s): State<AppState>,
    Auth(ctx): Auth,
) -> Result<Json<Verification>> {
    Ok(Json(audit::verify(&s.db, &ctx).await?))
}

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DownloadFormat {
    #[default]
    Csv,
    Jsonl,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadParams {
    /// `csv` (the default) or `jsonl`.
    #[param(inline)]
    pub format: Option<DownloadFormat>,
}

const CSV_HEADER: [&str; 10] = [
    "id",
    "created_at",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "details",
    "request_id",
    "seq",
    "hash",
];

/// The entries the filters select, newest first, as a file (admins). Streamed a page at a
/// time: the log is never held whole.
#[utoipa::path(get, path = "/audit-log/download", tag = "audit",
    params(DownloadParams, AuditFilter), security(("bearer" = [])),
    responses((status = 200, description = "The entries as CSV or JSON Lines",
        content((String = "text/csv"), (String = "application/jsonl")))))]
pub async fn download_audit_log(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(params): Query<DownloadParams>,
    Query(filter): Query<AuditFilter>,
) -> Result<Response> {
    access::authorize(&ctx, Action::AuditRead)?;
    let filter = filter.validate()?;
    let format = params.format.unwrap_or_default();
    let head = match format {
        DownloadFormat::Csv => Some(csv_record(
            CSV_HEADER.iter().map(|h| h.to_string()).collect(),
        )),
        DownloadFormat::Jsonl => None,
    };
    // The first page is read before answering, so a refusal is still a problem document.
    let first = audit::list(&s.db, &ctx, &filter, PageRequest::largest(None)?).await?;
    let filter = std::sync::Arc::new(filter);
    let pages =
        futures_util::stream::unfold(Some(Ok::<_, crate::error::Error>(first)), move |next| {
            let (db, ctx, filter) = (s.db.clone(), ctx.clone(), filter.clone());
            async move {
                let page = match next? {
                    Ok(page) => page,
                    // Past the first page the answer has begun: the download ends short.
                    Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
                };
                let bytes = render(format, &page.items);
                let following = match page.next_cursor {
                    Some(cursor) => Some(match PageRequest::largest(Some(cursor)) {
                        Ok(req) => audit::list(&db, &ctx, &filter, req).await,
                        Err(e) => Err(e),
                    }),
                    None => None,
                };
                Some((Ok::<_, std::io::Error>(bytes), following))
            }
        });
    let body = futures_util::stream::iter(head.map(Ok)).chain(pages);
    let (content_type, extension) = match format {
        DownloadFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        DownloadFormat::Jsonl => ("application/jsonl", "jsonl"),
    };
    let mut res = Response::new(Body::from_stream(body));
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"audit-log.{extension}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

fn render(format: DownloadFormat, entries: &[AuditEntry]) -> Bytes {
    let mut out = Vec::new();
    for e in entries {
        match format {
            DownloadFormat::Csv => out.extend_from_slice(&csv_record(vec![
                e.id.to_string(),
                e.created_at.to_rfc3339(),
                e.actor_id.map(|v| v.to_string()).unwrap_or_default(),
                e.action.clone(),
                e.target_type.clone(),
                e.target_id.map(|v| v.to_string()).unwrap_or_default(),
                e.details.to_string(),
                e.request_id.clone().unwrap_or_default(),
                e.seq.map(|v| v.to_string()).unwrap_or_default(),
                e.hash.clone().unwrap_or_default(),
            ])),
            DownloadFormat::Jsonl => {
                // An entry always serialises.
                let _ = serde_json::to_writer(&mut out, e);
                out.push(b'\n');
            }
        }
    }
    Bytes::from(out)
}
