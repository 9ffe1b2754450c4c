//! Approvals for large batches. A budget with `approval_above_usd` refuses a batch whose
//! hold is above it with 429 `approval_required` and an approval id; once an admin
//! approves it (`POST /api/approvals/{id}/approve` or `batchcost approve ID`), the same
//! project resubmitting the same body (same hash) within the approval's lifetime is
//! admitted, once, and still only within the budget's limit. Every refusal and approval
//! stays in the ledger with who and when.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::App;
use super::auth::{self, Scope};
use super::error::{ApiError, ApprovalRefusal};
use crate::ledger::NewSubmission;
use crate::ledger::workflow::{Approval, ApprovalRequest, ApprovalState, Approve};
use crate::money::Money;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/api/approvals", get(list))
        .route("/api/approvals/{id}/approve", post(approve))
}

/// An approval this submission used; given back if the batch is not admitted after all.
pub struct UsedApproval {
    pub id: String,
}

/// The first applicable budget whose approval threshold the hold is above.
fn needs_approval(app: &App, sub: &NewSubmission) -> Option<(String, Money)> {
    sub.windows.iter().find_map(|w| {
        let b = app.settings.budgets.iter().find(|b| b.name == w.budget)?;
        let above = b.policy.approval_above?;
        // A calibrated budget compares what it would hold, not the worst case.
        (w.hold.unwrap_or(sub.hold).usd > above).then(|| (b.name.clone(), above))
    })
}

/// Before admission: Ok(None) when no approval is needed, Ok(Some) when an approval of
/// this project's body was used for it, else the `approval_required` refusal.
pub async fn gate(
    app: &App,
    sub: &NewSubmission,
    now: Timestamp,
) -> Result<Option<UsedApproval>, ApiError> {
    let Some((budget, threshold)) = needs_approval(app, sub) else {
        return Ok(None);
    };
    if let Some(a) = app.ledger.approval_for(&sub.project, &sub.body_hash).await? {
        match a.state(now) {
            ApprovalState::Approved if app.ledger.use_approval(&a.id, &sub.sub_id, now).await? => {
                tracing::info!(approval = %a.id, project = %sub.project, "approval used");
                return Ok(Some(UsedApproval { id: a.id }));
            }
            // The client's retry of the batch its approval admitted: admission answers it
            // as a duplicate.
            ApprovalState::Used if a.used_at.is_some_and(|t| t >= sub.dedupe_since) => {
                return Ok(None);
            }
            _ => {}
        }
    }
    let req = ApprovalRequest {
        new_id: new_approval_id(sub),
        project: sub.project.clone(),
        body_hash: sub.body_hash.clone(),
        budget,
        hold: sub.hold.usd,
        threshold,
        at: now,
    };
    let a = app.ledger.request_approval(&req).await?;
    tracing::info!(approval = %a.id, project = %sub.project, budget = %a.budget, "batch waits for approval");
    Err(ApiError::ApprovalRequired(Box::new(ApprovalRefusal {
        approval_id: a.id.clone(),
        budget: a.budget.clone(),
        requested_usd: sub.hold.usd.usd_exact(),
        approval_above_usd: threshold.usd_exact(),
        state: a.state(now),
        expires_at: a.expires_at.map(crate::clock::rfc3339_micros),
    })))
}

/// After admission: an approval whose batch was refused or was a retry is given back.
pub async fn settle_use(app: &App, used: Option<UsedApproval>, sub_id: &str, admitted: bool) {
    if let (Some(u), false) = (used, admitted) {
        if let Err(e) = app.ledger.unuse_approval(&u.id, sub_id).await {
            tracing::warn!(approval = %u.id, error = %e, "could not give an approval back");
        }
    }
}

fn new_approval_id(sub: &NewSubmission) -> String {
    let h = xxhash_rust::xxh3::xxh3_128(format!("approval/{}", sub.sub_id).as_bytes());
    format!("apr_{:024x}", h >> 32)
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

/// Approves `id` for `ttl_secs` from `now`; shared by the API and `batchcost approve`.
pub async fn approve_in(
    ledger: &dyn crate::ledger::Ledger,
    id: &str,
    by: &str,
    now: Timestamp,
    ttl_secs: u64,
) -> Result<Approve, crate::ledger::LedgerError> {
    let ttl = SignedDuration::from_secs(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2));
    let expires = now.saturating_add(ttl).unwrap_or(Timestamp::MAX);
    ledger.approve(id, by, now, expires).await
}
