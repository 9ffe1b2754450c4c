//! The approvals API: `GET /api/approvals` (read scope) and
//! `POST /api/approvals/{id}/approve` (admin). The admission side is `crate::approvals`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::App;
use super::auth::{self, Scope};
use super::error::ApiError;
use crate::approvals::approve_in;
use crate::ledger::workflow::{Approval, Approve};

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/api/approvals", get(list))
        .route("/api/approvals/{id}/approve", post(approve))
}

/// An approval as the API shows it.
pub fn view(a: &Approval, now: Timestamp) -> Value {
    let ts = |t: Option<Timestamp>| t.map(crate::clock::rfc3339_micros);
    json!({
        "id": a.id,
        "project": a.project,
        "budget": a.budget,
        "state": a.state(now),
        "body_hash": a.body_hash,
        "requested_usd": a.hold.usd_exact(),
        "approval_above_usd": a.threshold.usd_exact(),
        "requested_at": crate::clock::rfc3339_micros(a.requested_at),
        "refusals": a.refusals,
        "last_refused_at": crate::clock::rfc3339_micros(a.last_refused_at),
        "approved_by": a.approved_by,
        "approved_at": ts(a.approved_at),
        "expires_at": ts(a.expires_at),
        "used_by_submission": a.used_by,
        "used_at": ts(a.used_at),
    })
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    auth::require(&app, &headers, Scope::Read)?;
    let now = app.clock.now();
    let all = app.ledger.approvals(1000).await?;
    let list: Vec<Value> = all.iter().map(|a| view(a, now)).collect();
    Ok(axum::Json(json!({ "approvals": list })).into_response())
}

/// `POST /api/approvals/{id}/approve`, optional body `{"by": "NAME"}` recorded as
/// `api:NAME` (default `api:admin`).
async fn approve(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth::admin(&app, &headers)?;
    let by = if body.iter().all(u8::is_ascii_whitespace) {
        "admin".to_string()
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::InvalidRequest(format!("body: expected JSON ({e})")))?;
        match v.get("by") {
            None => "admin".to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 128 => s.trim().into(),
            Some(_) => {
                return Err(ApiError::InvalidRequest(
                    "by: expected a non-empty string of at most 128 bytes".into(),
                ));
            }
        }
    };
    let now = app.clock.now();
    match approve_in(
        app.ledger.as_ref(),
        &id,
        &format!("api:{by}"),
        now,
        app.settings.workflow.approval_ttl_secs,
    )
    .await?
    {
        Approve::Approved(a) => Ok(axum::Json(view(&a, now)).into_response()),
        Approve::NotFound => Err(ApiError::NotFound(format!(
            "no approval `{}`",
            id.chars().take(80).collect::<String>()
        ))),
        Approve::Closed(a) => Err(ApiError::Conflict(format!(
            "approval `{}` is {}: submit the batch again for a new one",
            a.id,
            serde_json::to_value(a.state(now))
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ))),
    }
}
