//! Approvals for large batches. A budget with `approval_above_usd` refuses a batch whose
//! hold is above it with 429 `approval_required` and an approval id; once an admin
//! approves it (`POST /api/approvals/{id}/approve` or `batchcost approve ID`), the same
//! project resubmitting the same body (same hash) within the approval's lifetime is
//! admitted, once, and still only within the budget's limit. Every refusal and approval
//! stays in the ledger with who and when. Provider-neutral: every surface's submissions
//! pass through [`gate`].

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::app::App;
use crate::ledger::NewSubmission;
use crate::ledger::workflow::{ApprovalRequest, ApprovalState, Approve};
use crate::money::Money;
use crate::submit::SubmitError;

/// A batch that waits for an admin's approval: returned as `error.approval`.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRefusal {
    #[serde(rename = "id")]
    pub approval_id: String,
    pub budget: String,
    pub requested_usd: String,
    pub approval_above_usd: String,
    pub state: ApprovalState,
    pub expires_at: Option<String>,
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
) -> Result<Option<UsedApproval>, SubmitError> {
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
    Err(SubmitError::Approval(Box::new(ApprovalRefusal {
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
