//! Reports (managers and above), as JSON or, with `Accept: text/csv`, as a streamed RFC 4180
//! CSV file whose cells cannot run as spreadsheet formulas.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde::Serialize;

use super::{
    AppState,
    extract::{Auth, Query},
};
use crate::{
    error::Result,
    store::replica::Source,
    work::reports::{self, ReportParams, SlaReport, SummaryReport, ThroughputReport},
};

/// Whether the client asked for CSV (`Accept: text/csv`).
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.trim()
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv"))
        })
}

/// A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab or carriage return
/// first) gets a leading `'`, so it is shown as text (OWASP's advice on CSV injection).
pub(super) fn neutralised(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// One CSV record, RFC 4180 (quoted where needed, CRLF).
pub(super) fn csv_record(cells: Vec<String>) -> Bytes {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = writer.write_record(cells.into_iter().map(neutralised));
    Bytes::from(writer.into_inner().unwrap_or_default())
}

/// The report as a CSV download, streamed a record at a time.
fn csv_response(name: &str, header: &[&str], rows: Vec<Vec<String>>) -> Response {
    let head = csv_record(header.iter().map(|h| h.to_string()).collect());
    let records = std::iter::once(head).chain(rows.into_iter().map(csv_record));
    let stream = futures_util::stream::iter(records.map(Ok::<_, std::io::Error>));
    let mut res = Response::new(Body::from_stream(stream));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// The report as the client asked for it, saying which database it was read from
/// (`Docket-Data-Source: primary` or `replica`).
fn answer<T: Serialize>(
    headers: &HeaderMap,
    source: Source,
    report: T,
    csv: impl FnOnce(T) -> Response,
) -> Response {
    let mut res = if wants_csv(headers) {
        csv(report)
    } else {
        axum::Json(report).into_response()
    };
    res.headers_mut().insert(
        "docket-data-source",
        HeaderValue::from_static(source.as_str()),
    );
    res
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Open tickets by status, priority, assignee and project, and the tickets created and
/// resolved in the period (managers). `Accept: text/csv` for a CSV file.
#[utoipa::path(get, path = "/reports/summary", tag = "reports", params(ReportParams),
    security(("bearer" = [])),
    responses((status = 200, description = "The summary", content(
        (SummaryReport = "application/json"), (String = "text/csv")))))]
pub async fn summary_report(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    headers: HeaderMap,
    Query(params): Query<ReportParams>,
) -> Result<Response> {
    let scope = params.validate()?;
    let (db, source) = s.reports.pick().await;
    let report = reports::summary(&db, &ctx, scope).await?;
    Ok(answer(&headers, source, report, |r| {
        let row =
            |section: &str, key: String, count: u64| vec![section.into(), key, count.to_string()];
        let mut rows = vec![
            row("period", "created".into(), r.created),
            row("period", "resolved".into(), r.resolved),
            row("open", "all".into(), r.open),
        ];
        rows.extend(
            r.open_by_status
                .iter()
                .map(|c| row("open_by_status", c.status.as_str().into(), c.count)),
        );
        rows.extend(
            r.open_by_priority
                .iter()
                .map(|c| row("open_by_priority", c.priority.as_str().into(), c.count)),
        );
        rows.extend(
            r.open_by_assignee
                .iter()
                .map(|c| row("open_by_assignee", opt(c.assignee_id), c.count)),
        );
        rows.extend(
            r.open_by_project
                .iter()
                .map(|c| row("open_by_project", c.key.clone(), c.count)),
        );
        csv_response("summary", &["section", "key", "count"], rows)
    }))
}

/// Tickets created and resolved per day or week of the period (managers).
#[utoipa::path(get, path = "/reports/throughput", tag = "reports", params(ReportParams),
    security(("bearer" = [])),
    responses((status = 200, description = "Throughput", content(
        (ThroughputReport = "application/json"), (String = "text/csv")))))]
pub async fn throughput_report(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    headers: HeaderMap,
    Query(params): Query<ReportParams>,
) -> Result<Response> {
    let scope = params.validate()?;
    let (db, source) = s.reports.pick().await;
    let report = reports::throughput(&db, &ctx, scope).await?;
    Ok(answer(&headers, source, report, |r| {
        let rows = r
            .buckets
            .iter()
            .map(|b| {
                vec![
                    b.start.to_string(),
                    b.created.to_string(),
                    b.resolved.to_string(),
                ]
            })
            .collect();
        csv_response("throughput", &["start", "created", "resolved"], rows)
    }))
}

/// SLA attainment per policy, priority and clock, with business-minute percentiles, for the
/// clocks started in the period (managers).
#[utoipa::path(get, path = "/reports/sla", tag = "reports", params(ReportParams),
    security(("bearer" = [])),
    responses((status = 200, description = "SLA attainment", content(
        (SlaReport = "application/json"), (String = "text/csv")))))]
pub async fn sla_report(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    headers: HeaderMap,
    Query(params): Query<ReportParams>,
) -> Result<Response> {
    let scope = params.validate()?;
    let (db, source) = s.reports.pick().await;
    let report = reports::sla(&db, &ctx, scope).await?;
    Ok(answer(&headers, source, report, |r| {
        let rows = r
            .rows
            .iter()
            .map(|row| {
                vec![
                    row.policy_id.to_string(),
                    row.priority.as_str().into(),
                    row.clock.as_str().into(),
                    row.clocks.to_string(),
                    row.met.to_string(),
                    row.breached.to_string(),
                    row.running.to_string(),
                    opt(row.attainment),
                    opt(row.p50_minutes),
                    opt(row.p90_minutes),
                    opt(row.p95_minutes),
                ]
            })
            .collect();
        csv_response(
            "sla",
            &[
                "policy_id",
                "priority",
                "clock",
                "clocks",
                "met",
                "breached",
                "running",
                "attainment",
                "p50_minutes",
                "p90_minutes",
                "p95_minutes",
            ],
            rows,
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_would_be_formulas_are_text() {
        for (cell, want) in [
            ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@cmd", "'@cmd"),
            ("\tx", "'\tx"),
            ("OPS", "OPS"),
            ("12", "12"),
        ] {
            assert_eq!(neutralised(cell.into()), want);
        }
    }

    #[test]
    fn records_are_rfc_4180() {
        let r = csv_record(vec![
            "a,b".into(),
            "say \"hi\"".into(),
            "line\nbreak".into(),
        ]);
        assert_eq!(&r[..], b"\"a,b\",\"say \"\"hi\"\"\",\"line\nbreak\"\r\n");
    }

    #[test]
    fn csv_is_chosen_by_accept() {
        let mut h = HeaderMap::new();
        assert!(!wants_csv(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, TEXT/CSV;q=0.9"),
        );
        assert!(wants_csv(&h));
    }
}
