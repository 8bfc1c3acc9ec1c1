//! Attachments: multipart uploads streamed into object storage, ranged downloads, removal.

use std::ops::Range;

use axum::{
    body::Body,
    extract::{FromRequest, Multipart, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    AppState,
    extract::{Auth, Json, Path, Query, media_type},
    idempotency::{IDEMPOTENT_REPLAYED, IdempotencyKeyHeader, key_of, write},
    problem::Problem,
};
use crate::{
    error::{Error, Result},
    files::{self, Files, WriteError},
    idempotency::{Keyed, Reply},
    work::attachments::{self, Allowance, Attachment, MAX_FILES_AT_ONCE, Upload},
};

/// `GET /tickets/{id}/attachments`, and the answer to an upload of several files.
#[derive(Serialize, ToSchema)]
pub struct AttachmentList {
    pub items: Vec<Attachment>,
}

/// What an upload answers: the attachment for one file, `{items}` for several.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Uploaded {
    One(Attachment),
    Several(AttachmentList),
}

/// The multipart form of an upload (it only describes the form in the OpenAPI document; the
/// handler reads the fields as they stream in, and refuses any but `file`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The files: repeat the field to send several (at most 20).
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadOptions {
    /// For an internal note: staff only from the start (agents and above).
    #[serde(default)]
    pub internal: bool,
}

/// Attach files to a ticket (multipart, field `file`, repeated for several). One file answers
/// with the attachment, several with `{items}`. The bytes are streamed to storage; a file over
/// `DOCKET_MAX_ATTACHMENT_BYTES` or past the organisation's quota is refused (413) with nothing
/// kept.
#[utoipa::path(post, path = "/tickets/{id}/attachments", tag = "attachments",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    params(("id" = String, Path, description = "Id or key"), UploadOptions, IdempotencyKeyHeader),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored: the attachment, or `{items}` for several files", body = Uploaded,
            headers(("Location" = String))),
        (status = 413, description = "A file is too large, or the quota is used up (`quota_exceeded`)",
            content_type = "application/problem+json", body = Problem),
        (status = 415, description = "Not multipart/form-data", content_type = "application/problem+json", body = Problem)))]
pub async fn upload_attachments(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(opts): Query<UploadOptions>,
    req: Request,
) -> Result<Response, Problem> {
    let key = key_of(req.headers())?;
    let path = req.uri().path().to_owned();
    let multipart = multipart(req).await?;
    let allowance = attachments::allowance(&s.db, &s.files, &ctx, &id, opts.internal).await?;
    let uploads = receive(&s.files, ctx.org_id, allowance, multipart).await?;
    // The same files under the same key are the same request.
    let fingerprint: Vec<u8> = uploads
        .iter()
        .flat_map(|u| {
            [
                u.filename.as_bytes(),
                b"\0",
                u.blob.sha256.as_bytes(),
                b"\n",
            ]
            .concat()
        })
        .collect();
    let keyed = key.map(|key| Keyed::new(key, "POST", &path, &fingerprint));
    let stored = uploads.clone();
    let answer = write(&s.db, &ctx, keyed, async |tx| {
        let mut added =
            attachments::add(tx, &ctx, &s.files, &id, None, opts.internal, stored).await?;
        if added.len() == 1 {
            let a = added.remove(0);
            let location = format!("/api/v1/attachments/{}", a.id);
            Reply::created(&Uploaded::One(a), location, None)
        } else {
            let location = format!("/api/v1/tickets/{id}/attachments");
            Reply::created(
                &Uploaded::Several(AttachmentList { items: added }),
                location,
                None,
            )
        }
    })
    .await;
    // Bytes no row names (refused, or a replay that kept the first upload's) go at once; the
    // orphan sweep is the safety net.
    let kept = matches!(&answer, Ok(res) if !res.headers().contains_key(&IDEMPOTENT_REPLAYED));
    if !kept {
        forget(&s.files, ctx.org_id, &uploads).await;
    }
    Ok(answer?)
}

async fn multipart(req: Request) -> Result<Multipart> {
    if media_type(req.headers()).as_deref() != Some("multipart/form-data") {
        return Err(Error::UnsupportedMediaType {
            detail: "send the files as multipart/form-data, in fields named `file`".into(),
        });
    }
    Multipart::from_request(req, &())
        .await
        .map_err(|rejection| Error::bad_request("invalid_multipart", rejection.body_text()))
}

/// Streams each `file` field into storage within the allowance. On any failure, what was
/// stored is deleted again and nothing is kept.
async fn receive(
    files: &Files,
    org_id: Uuid,
    allowance: Allowance,
    mut form: Multipart,
) -> Result<Vec<Upload>> {
    let mut uploads = Vec::new();
    match receive_into(files, org_id, allowance, &mut form, &mut uploads).await {
        Ok(()) => Ok(uploads),
        Err(err) => {
            forget(files, org_id, &uploads).await;
            Err(err)
        }
    }
}

async fn receive_into(
    files: &Files,
    org_id: Uuid,
    allowance: Allowance,
    form: &mut Multipart,
    uploads: &mut Vec<Upload>,
) -> Result<()> {
    let mut taken = 0;
    while let Some(mut field) = form.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name != "file" {
            return Err(Error::invalid(
                &name,
                "unknown field: send files in fields named `file`",
            ));
        }
        if uploads.len() == MAX_FILES_AT_ONCE {
            return Err(Error::invalid(
                "file",
                format!("at most {MAX_FILES_AT_ONCE} files at once"),
            ));
        }
        let filename = files::sanitize_filename(field.file_name().unwrap_or_default());
        let mut writer = files.writer(org_id, allowance.next_file(taken));
        let failed = loop {
            match field.chunk().await {
                Ok(Some(chunk)) => match writer.write(chunk).await {
                    Ok(()) => {}
                    Err(WriteError::TooLarge) => break Some(allowance.exceeded(taken)),
                    Err(WriteError::Store(err)) => break Some(err),
                },
                Ok(None) => break None,
                Err(err) => break Some(malformed(err)),
            }
        };
        if let Some(err) = failed {
            writer.abort().await;
            return Err(err);
        }
        let blob = writer.finish().await?;
        taken += blob.size;
        uploads.push(Upload { filename, blob });
    }
    if uploads.is_empty() {
        return Err(Error::invalid("file", "send at least one file"));
    }
    Ok(())
}

fn malformed(err: axum::extract::multipart::MultipartError) -> Error {
    Error::bad_request("invalid_multipart", err.body_text())
}

async fn forget(files: &Files, org_id: Uuid, uploads: &[Upload]) {
    for u in uploads {
        if let Err(err) = files.delete(org_id, u.blob.id).await {
            tracing::warn!(error = ?err, "removing a refused upload failed; the orphan sweep will");
        }
    }
}

/// The ticket's attachments, oldest first (requesters do not see those of internal notes).
#[utoipa::path(get, path = "/tickets/{id}/attachments", tag = "attachments",
    params(("id" = String, Path, description = "Id or key")), security(("bearer" = [])),
    responses((status = 200, description = "The attachments", body = AttachmentList)))]
pub async fn list_attachments(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<Json<AttachmentList>> {
    let items = attachments::list(&s.db, &ctx, &id).await?;
    Ok(Json(AttachmentList { items }))
}

/// Download an attachment (`Range: bytes=…` for part of it). Served as a download with the
/// type told from its bytes; only common raster images may be shown inline.
#[utoipa::path(get, path = "/attachments/{id}", tag = "attachments",
    params(("id" = Uuid, Path), ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The file", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "*/*", body = Vec<u8>),
        (status = 416, description = "The range is outside the file", content_type = "application/problem+json",
            body = Problem)))]
pub async fn download_attachment(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let a = attachments::get(&s.db, &ctx, id).await?;
    let size = a.size.max(0) as u64;
    let range = requested_range(&headers, size)?;
    let partial = range.is_some();
    let download = s.files.read(ctx.org_id, a.id, size, range).await?;
    let inline = files::shown_inline(&a.content_type);
    let mut res = Response::new(Body::from_stream(download.body));
    *res.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = res.headers_mut();
    let r = &download.range;
    let value = |v: String| HeaderValue::from_str(&v).map_err(Error::internal);
    h.insert(header::CONTENT_TYPE, value(a.content_type.clone())?);
    h.insert(
        header::CONTENT_LENGTH,
        value((r.end - r.start).to_string())?,
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        value(files::content_disposition(&a.filename, inline))?,
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(format!("\"{}\"", a.sha256))?);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    if partial {
        let last = r.end.saturating_sub(1);
        h.insert(
            header::CONTENT_RANGE,
            value(format!("bytes {}-{last}/{}", r.start, download.size))?,
        );
    }
    Ok(res)
}

/// The one byte range a `Range` header asks for. A header that is not a byte range, or asks
/// for several, is ignored (the whole file is sent, as RFC 9110 allows); one that selects
/// nothing of the file is 416.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<Range<u64>>> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Ok(parsed) = http_range_header::parse_range_header(value) else {
        return Ok(None);
    };
    if size == 0 {
        // No byte of an empty file can be asked for.
        return Err(Error::RangeNotSatisfiable { size });
    }
    match parsed.validate(size) {
        Ok(ranges) if ranges.len() == 1 => {
            let r = &ranges[0];
            Ok(Some(*r.start()..r.end() + 1))
        }
        Ok(_) => Ok(None),
        Err(_) => Err(Error::RangeNotSatisfiable { size }),
    }
}

/// Remove an attachment (its uploader, or agents and above). Its bytes are deleted shortly
/// after, by the worker.
#[utoipa::path(delete, path = "/attachments/{id}", tag = "attachments",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Removed")))]
pub async fn remove_attachment(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        attachments::delete(tx, &ctx, id).await?;
        Ok(Reply::no_content())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Result<Option<Range<u64>>> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        requested_range(&h, size)
    }

    #[test]
    fn ranges_are_one_span_or_ignored_or_unsatisfiable() {
        assert_eq!(range("bytes=0-9", 100).unwrap(), Some(0..10));
        assert_eq!(range("bytes=90-", 100).unwrap(), Some(90..100));
        assert_eq!(range("bytes=-5", 100).unwrap(), Some(95..100));
        assert_eq!(range("bytes=50-500", 100).unwrap(), Some(50..100));
        assert_eq!(range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(range("lines=1-2", 100).unwrap(), None);
        assert!(matches!(
            range("bytes=100-", 100),
            Err(Error::RangeNotSatisfiable { size: 100 })
        ));
        assert!(matches!(
            range("bytes=0-0", 0),
            Err(Error::RangeNotSatisfiable { .. })
        ));
    }
}
