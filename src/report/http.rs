//! `GET /api/reports/spend?from=&to=&group_by=&format=`: the gateway's admin route calls
//! these two functions; the body streams like the command's stdout.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use jiff::tz::TimeZone;

use super::{GroupBy, ReportQuery, spend_report};
use crate::ledger::Ledger;
use crate::pricing::PriceTable;

const KNOWN: [&str; 5] = ["from", "to", "group_by", "format", "wide"];

/// Validates the query string; the message names the parameter. `format` defaults to
/// `json`, `group_by` to `day,project,model`.
pub fn parse(
    params: &HashMap<String, String>,
    tz: &TimeZone,
    tz_name: &str,
) -> Result<ReportQuery, String> {
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "{}: unknown parameter, expected from, to, group_by, format, wide",
            unknown.chars().take(40).collect::<String>()
        ));
    }
    let get = |k: &str| params.get(k).map(String::as_str);
    let from = get("from").ok_or("from: required, a date YYYY-MM-DD (first day included)")?;
    let to = get("to").ok_or("to: required, a date YYYY-MM-DD (first day excluded)")?;
    let wide = match get("wide") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err("wide: expected true or false".into()),
    };
    let mut q = ReportQuery::parse(
        from,
        to,
        get("group_by").unwrap_or(GroupBy::DEFAULT),
        get("format").unwrap_or("json"),
        tz,
        tz_name,
    )
    .map_err(|e| e.query())?;
    q.wide = wide;
    Ok(q)
}

/// The streamed response. A failure mid-stream aborts the body, so a client never takes
/// a cut-off report for a complete one.
pub fn response(ledger: &dyn Ledger, pricing: &PriceTable, query: &ReportQuery) -> Response {
    let chunks = spend_report(ledger, pricing, query).map(|c| {
        c.map_err(|e| {
            tracing::error!(error = %e, "spend report failed mid-stream");
            std::io::Error::other(e)
        })
    });
    ([(CONTENT_TYPE, query.format.content_type())], Body::from_stream(chunks)).into_response()
}
