//! Refused submissions, explained once: each 400, 401, 413 and 429 on a create is logged at
//! INFO with the project, the reason and the amounts (never a key). Budget refusals are
//! also recorded in the ledger (`crate::submit`), with the id the 429 and this line carry,
//! so "why was my batch refused?" has an answer afterwards in the log and `/api/batches`.

use super::error::ApiError;

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
