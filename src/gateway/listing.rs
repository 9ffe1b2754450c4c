//! `GET /api/batches` (admin): the ledger's batches and budget refusals, newest first,
//! filtered by project, state and time, so an operator can see what each project sent
//! and why a submission was refused without reading the database.
//!
//! `?project=NAME&state=submitting|in_flight|settled|failed|refused&from=&to=&limit=N`;
//! `from` / `to` are RFC 3339 instants or local dates (`YYYY-MM-DD`, midnight in the
//! configured zone; `to` excluded); `limit` 1 to 1000, default 100.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{App, auth};
use crate::clock::rfc3339_micros;
use crate::ledger::{BatchFilter, BatchRecord, ListState, Refusal};
use crate::refusal::local_rfc3339;

const KNOWN: [&str; 5] = ["project", "state", "from", "to", "limit"];

/// `GET /api/batches`
pub async fn list(
    State(app): State<Arc<App>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require(&app, &headers, auth::Scope::Read)?;
    let f = filter(&app, &params).map_err(ApiError::InvalidRequest)?;
    let batches = app.ledger.list_batches(&f).await?;
    let refusals = app.ledger.list_refusals(&f).await?;
    let mut items: Vec<(Timestamp, Value)> = batches
        .iter()
        .map(|b| (b.submitted_at, batch_json(b)))
        .chain(refusals.iter().map(|r| (r.refused_at, refusal_json(&app, r))))
        .collect();
    items.sort_by_key(|i| std::cmp::Reverse(i.0));
    let has_more = items.len() > f.limit as usize;
    items.truncate(f.limit as usize);
    let data: Vec<Value> = items.into_iter().map(|(_, v)| v).collect();
    Ok(axum::Json(json!({ "data": data, "has_more": has_more })).into_response())
}

fn filter(app: &App, p: &HashMap<String, String>) -> Result<BatchFilter, String> {
    if let Some(k) = p.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "{}: unknown parameter, expected project, state, from, to, limit",
            k.chars().take(40).collect::<String>()
        ));
    }
    let s = &app.settings;
    let project = match p.get("project") {
        Some(name) if s.projects.iter().any(|(n, _)| n == name) => Some(name.clone()),
        Some(name) => {
            return Err(format!(
                "project: no project named `{}`",
                name.chars().take(64).collect::<String>()
            ));
        }
        None => None,
    };
    let state = match p.get("state") {
        Some(v) => Some(ListState::parse(v).ok_or_else(|| {
            format!(
                "state: unknown state `{}`, expected submitting, in_flight, settled, failed or refused",
                v.chars().take(40).collect::<String>()
            )
        })?),
        None => None,
    };
    let instant = |key: &str| -> Result<Option<Timestamp>, String> {
        let Some(v) = p.get(key) else { return Ok(None) };
        if let Ok(t) = v.parse::<Timestamp>() {
            return Ok(Some(t));
        }
        let day = v.parse::<jiff::civil::Date>().map_err(|_| {
            format!(
                "{key}: expected an RFC 3339 instant or a date YYYY-MM-DD, got `{}`",
                v.chars().take(40).collect::<String>()
            )
        })?;
        day.to_zoned(s.timezone.clone())
            .map(|z| Some(z.timestamp()))
            .map_err(|e| format!("{key}: {e}"))
    };
    let limit = match p.get("limit") {
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| "limit: expected an integer from 1 to 1000".to_string())?,
        None => 100,
    };
    Ok(BatchFilter { project, state, since: instant("from")?, until: instant("to")?, limit })
}

fn batch_json(b: &BatchRecord) -> Value {
    json!({
        "kind": "batch",
        "id": b.upstream_id,
        "submission_id": b.sub_id,
        "project": b.project,
        "provider": b.provider,
        "status": b.state,
        "request_count": b.request_count,
        "submitted_at": rfc3339_micros(b.submitted_at),
        "ended_at": b.ended_at.map(rfc3339_micros),
        "reserved_usd": b.hold.usd.usd_exact(),
        "cost_usd": b.cost.map(|c| c.usd_exact()),
        "last_error": b.error,
    })
}

/// A refusal as `/api/batches` and `/api/batches/{refusal_id}` show it.
pub fn refusal_json(app: &App, r: &Refusal) -> Value {
    json!({
        "kind": "refusal",
        "id": r.refusal_id,
        "project": r.project,
        "provider": r.provider,
        "status": "refused",
        "reason": r.reason,
        "request_id": r.request_id,
        "request_count": r.request_count,
        "submitted_at": rfc3339_micros(r.refused_at),
        "budget": r.budget,
        "period": r.period,
        "limit_kind": r.limit_kind,
        "requested_usd": r.requested.usd_exact(),
        "limit_usd": r.limit.map(|l| l.usd_exact()),
        "spent_usd": r.spent.usd_exact(),
        "reserved_usd": r.reserved.usd_exact(),
        "resets_at": local_rfc3339(r.window_end, &app.settings.timezone),
        "message": r.message,
    })
}
