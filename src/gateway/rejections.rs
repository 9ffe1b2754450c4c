//! Refused submissions, explained once: each 400, 401, 413 and 429 on a create is logged at
//! INFO with the project, the reason and the amounts (never a key), and a budget refusal is
//! recorded in the ledger with the id its 429 carries, so "why was my batch refused?" has
//! an answer afterwards in the log and in `GET /api/batches`.

use super::App;
use super::error::{ApiError, BudgetRefusal};
use crate::ledger::{NewSubmission, Refusal};

/// One INFO line per refused submission.
pub fn log(project: &str, e: &ApiError, request_id: &str) {
    let reason = match e {
        ApiError::BudgetExceeded(r) => {
            tracing::info!(
                request_id = %request_id,
                project = %project,
                reason = "budget_exceeded",
                status = 429,
                budget = %r.name,
                limit_kind = %r.limit_kind,
                requested_usd = %r.requested_usd,
                limit_usd = %r.limit_usd.as_deref().unwrap_or("-"),
                spent_usd = %r.spent_usd,
                reserved_usd = %r.reserved_usd,
                resets_at = %r.resets_at,
                refusal_id = %r.refusal_id,
                why = %r.message,
                "submission refused"
            );
            return;
        }
        ApiError::InvalidRequest(_) => "invalid_request",
        ApiError::TooLarge(_) => "too_large",
        ApiError::Unauthenticated(_) => "unauthenticated",
        _ => return,
    };
    // These messages name the request and field, cut long values, and never carry a key.
    tracing::info!(
        request_id = %request_id,
        project = %project,
        reason = %reason,
        status = e.status().as_u16(),
        why = %e,
        "submission refused"
    );
}

/// Records a budget refusal in the ledger and returns the 429 carrying its id. A ledger
/// failure here is logged and the client still gets its 429 (without an id): the refusal
/// itself reserved nothing, so nothing is lost but the record.
pub async fn record(
    app: &App,
    mut refusal: BudgetRefusal,
    sub: &NewSubmission,
    request_id: &str,
) -> ApiError {
    let id = crate::refusal::new_id();
    let money = |s: &str| crate::money::Money::parse_usd(s).unwrap_or_default();
    let window_end =
        sub.windows.iter().find(|w| w.budget == refusal.name).map_or(sub.submitted_at, |w| w.end);
    let rec = Refusal {
        refusal_id: id.clone(),
        project: sub.project.clone(),
        provider: sub.provider.clone(),
        refused_at: sub.submitted_at,
        request_id: request_id.to_string(),
        reason: "budget_exceeded".into(),
        budget: refusal.name.clone(),
        period: refusal.period.clone(),
        limit_kind: refusal.limit_kind.clone(),
        request_count: sub.request_count,
        requested: sub.hold.usd,
        limit: refusal.limit_usd.as_deref().map(money),
        spent: money(&refusal.spent_usd),
        reserved: money(&refusal.reserved_usd),
        window_end,
        body_hash: sub.body_hash.clone(),
        message: refusal.message.clone(),
    };
    match app.ledger.record_refusal(&rec).await {
        Ok(()) => refusal.refusal_id = id,
        Err(e) => tracing::warn!(request_id, error = %e, "could not record a budget refusal"),
    }
    ApiError::BudgetExceeded(Box::new(refusal))
}
