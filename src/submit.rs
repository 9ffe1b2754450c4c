//! Provider-neutral admission: a surface has validated and priced the body; here the worst
//! case is reserved against every budget that applies in one ledger step (or refused
//! without calling the upstream), the create is forwarded through the provider, and its
//! outcome recorded. A create whose outcome is unknown (timeout, lost answer, 5xx) is
//! never blindly retried: the upstream's batch list decides whether it exists, so one
//! client request makes at most one upstream batch.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::app::App;
use crate::budgets::{applicable_to, selected_models, window_ref};
use crate::estimate::Estimate;
use crate::ledger::{
    Admit, BatchRecord, BatchState, Hold, LedgerError, NewSubmission, WindowRef, WindowState,
};
use crate::providers::{CreateCall, Provider, UpstreamError, UpstreamReply};
use crate::recover::Match;
use crate::settle::{HoldBreakdown, ModelHold};

/// A priced batch, ready for admission.
pub struct Priced<'a> {
    pub project: &'a str,
    pub estimate: &'a Estimate,
    /// Hash of what identifies the batch for retry detection (the body, or the input file).
    pub body_hash: String,
    pub now: Timestamp,
    /// The request's `request-id`, kept with a refusal record.
    pub request_id: &'a str,
}

/// What a budget refusal tells the client beyond the window's figures (issue 16).
#[derive(Debug, Clone, Default)]
pub struct RefusalDetail {
    /// The ledger record's id (`GET /api/batches/{id}`); empty if recording failed.
    pub refusal_id: String,
    /// The amounts, the reset in the configured zone and what would fit.
    pub message: String,
    /// The window's end in the configured zone, with its offset.
    pub resets_at: String,
}

/// Why a submission did not produce a batch. Surfaces map it onto their envelopes.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A budget cannot take the hold: the window as it stood and what was asked.
    #[error("{}", .detail.message)]
    Budget { window: Box<WindowState>, hold: Hold, detail: Box<RefusalDetail> },
    /// The upstream's own non-2xx answer.
    #[error("upstream answered {}", .0.status)]
    Upstream(Box<UpstreamReply>),
    #[error(transparent)]
    UpstreamFailed(#[from] UpstreamError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// An identical submission is still being placed (409 for the client to retry).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
    /// The hold is above a budget's `approval_above_usd` and no approval is in force.
    #[error("batch needs an approval (`batchcost approve {}`)", .0.approval_id)]
    Approval(Box<crate::approvals::ApprovalRefusal>),
}

/// Admits `priced` and creates the batch: the upstream's 2xx batch object on success
/// (for a client's retry, the first attempt's batch).
pub async fn submit(
    app: &Arc<App>,
    provider: &Arc<dyn Provider>,
    priced: Priced<'_>,
    call: CreateCall,
) -> Result<UpstreamReply, SubmitError> {
    let sub_id = new_sub_id(app, &priced.body_hash);
    submit_as(app, provider, priced, call, sub_id).await
}

/// A fresh submission id, for a surface that stamps it on the create itself (OpenAI
/// `metadata`) before calling [`submit_as`].
pub fn new_submission_id(app: &App, body_hash: &str) -> String {
    new_sub_id(app, body_hash)
}

/// As [`submit`], under a submission id the caller made with [`new_submission_id`].
pub async fn submit_as(
    app: &Arc<App>,
    provider: &Arc<dyn Provider>,
    priced: Priced<'_>,
    call: CreateCall,
    sub_id: String,
) -> Result<UpstreamReply, SubmitError> {
    let (est, now) = (priced.estimate, priced.now);
    let breakdown = HoldBreakdown {
        models: est
            .models
            .iter()
            .map(|m| ModelHold {
                model: m.model.clone(),
                requests: m.requests,
                worst_cost: m.worst.cost,
            })
            .collect(),
    };
    let mut windows = windows_for(app, provider.name(), priced.project, Some(est), now);
    // budgets: calibrated budgets hold what settled batches suggest, not the worst case.
    let bounds = crate::holds::bounds(app, provider.name(), est, now);
    crate::holds::apply(
        app,
        priced.project,
        provider.name(),
        &bounds,
        hold_of(est),
        &mut windows,
        now,
    )
    .await;
    let sub = NewSubmission {
        sub_id,
        project: priced.project.to_string(),
        provider: provider.name().to_string(),
        submitted_at: now,
        request_count: est.requests,
        custom_id_fingerprint: est.custom_id_fingerprint,
        hold: hold_of(est),
        windows,
        body_hash: priced.body_hash,
        estimate_json: serde_json::to_string(&breakdown).unwrap_or_default(),
        dedupe_since: now
            .saturating_sub(SignedDuration::from_secs(
                app.settings.limits.dedupe_window_secs as i64,
            ))
            .unwrap_or(Timestamp::MIN),
        // While this replica creates it, no replica's recovery may release it.
        lease: Some(crate::replica::lease(app)),
        // Kept with the batch in its admission (on every create's path: no extra step).
        bounds,
    };
    // budgets: holds above a budget's `approval_above_usd` need an approval of this body.
    let approval = crate::approvals::gate(app, &sub, now).await?;
    let (result, admitted) = admit(app, provider, &sub, &call, est, priced.request_id).await;
    crate::approvals::settle_use(app, approval, &sub.sub_id, admitted).await;
    if admitted {
        if let Err(e) = crate::notify::record_crossings(app).await {
            tracing::warn!(error = %e, "threshold crossings deferred to the notification worker");
        }
    }
    result
}

/// Admits and forwards; the flag says whether the ledger admitted this submission as new
/// (whatever the upstream then did with it).
async fn admit(
    app: &Arc<App>,
    provider: &Arc<dyn Provider>,
    sub: &NewSubmission,
    call: &CreateCall,
    est: &Estimate,
    request_id: &str,
) -> (Result<UpstreamReply, SubmitError>, bool) {
    // A retry whose first attempt failed outright finds nothing to answer with: admit it
    // as new (bounded, in case identical retries race each other).
    for _ in 0..3 {
        let admitted = match app.ledger.admit(sub).await {
            Ok(a) => a,
            Err(e) => {
                // It may have committed all the same (the answer, or the flush after it,
                // was lost): let recovery release it without waiting for this replica.
                if let Err(e) = app.ledger.drop_leases(&app.replica_id, Some(&sub.sub_id)).await {
                    tracing::warn!(sub_id = %sub.sub_id, error = %e, "cannot drop a lease");
                }
                return (Err(e.into()), false);
            }
        };
        match admitted {
            Admit::Refused(w) => {
                let hold = w_hold(sub, &w);
                let detail = refused(app, sub, &w, &hold, est, request_id).await;
                return (Err(SubmitError::Budget { window: w, hold, detail }), false);
            }
            Admit::Admitted => {
                app.failpoints.hit("after_admit").await;
                let created = forward_create(app, provider.as_ref(), sub, call).await;
                if created.is_err() {
                    // Released, or left `submitting` for recovery: which replica does it
                    // (after `reconcile_after_secs`) is no longer this one's to say.
                    if let Err(e) = app.ledger.drop_leases(&app.replica_id, Some(&sub.sub_id)).await
                    {
                        tracing::warn!(sub_id = %sub.sub_id, error = %e, "cannot drop a lease");
                    }
                }
                return (created, true);
            }
            Admit::Duplicate(rec) => {
                match answer_duplicate(app, provider.as_ref(), *rec, call).await {
                    Ok(Some(reply)) => return (Ok(reply), false),
                    Ok(None) => {}
                    Err(e) => return (Err(e), false),
                }
            }
        }
    }
    let busy = "identical batches from this project keep failing; retry shortly";
    (Err(SubmitError::Conflict(busy.into())), false)
}

/// Explains a budget refusal and records it in the ledger (the id goes back in the 429).
/// A ledger failure here is logged and the client still gets its refusal, without an id:
/// the refusal reserved nothing, so only the record is lost.
async fn refused(
    app: &App,
    sub: &NewSubmission,
    w: &WindowState,
    hold: &Hold,
    est: &Estimate,
    request_id: &str,
) -> Box<RefusalDetail> {
    let s = &app.settings;
    let kind = blocked_by(w, hold).unwrap_or("usd");
    let message = crate::refusal::budget_message(
        w,
        hold,
        kind,
        Some(est),
        &app.pricing,
        sub.submitted_at,
        &s.timezone,
        &s.timezone_name,
    );
    let rec = crate::ledger::Refusal {
        refusal_id: crate::refusal::new_id(),
        project: sub.project.clone(),
        provider: sub.provider.clone(),
        refused_at: sub.submitted_at,
        request_id: request_id.to_string(),
        reason: "budget_exceeded".into(),
        budget: w.budget.clone(),
        period: w.period.as_str().to_string(),
        limit_kind: kind.to_string(),
        request_count: sub.request_count,
        requested: hold.usd,
        limit: w.limit,
        spent: w.spent,
        reserved: w.reserved,
        window_end: w.end,
        body_hash: sub.body_hash.clone(),
        message: message.clone(),
    };
    let refusal_id = match app.ledger.record_refusal(&rec).await {
        Ok(()) => rec.refusal_id,
        Err(e) => {
            tracing::warn!(request_id, error = %e, "could not record a budget refusal");
            String::new()
        }
    };
    let resets_at = crate::refusal::local_rfc3339(w.end, &s.timezone);
    Box::new(RefusalDetail { refusal_id, message, resets_at })
}

/// The hold the refusing window was asked to take.
fn w_hold(sub: &NewSubmission, w: &WindowState) -> Hold {
    sub.windows.iter().find(|r| r.budget == w.budget).and_then(|r| r.hold).unwrap_or(sub.hold)
}

/// How far a create got, as far as we can tell.
enum Outcome {
    /// The upstream said it created nothing (4xx, 429, 529) or was never reached.
    Refused,
    /// A complete answer that is neither: the upstream is done with it, either way.
    Unclear,
    /// No complete answer (timeout, cut): the upstream may still act on it.
    Unanswered,
}

/// Sends an admitted submission upstream and records what became of it. A create whose
/// outcome is unclear is settled by the upstream's batch list; one the list proves never
/// happened is retried like any refused call.
async fn forward_create(
    app: &Arc<App>,
    provider: &dyn Provider,
    sub: &NewSubmission,
    call: &CreateCall,
) -> Result<UpstreamReply, SubmitError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = provider.create(call).await;
        if let Ok(reply) = &outcome {
            if let Some(id) = provider.batch_id(&reply.body).filter(|_| reply.status.is_success()) {
                app.failpoints.hit("after_upstream_accept").await;
                accepted(app, sub, &id).await?;
                return outcome.map_err(SubmitError::from);
            }
        }
        let kind = match &outcome {
            Ok(r) if r.status.is_client_error() || provider.refused_outright(r.status) => {
                Outcome::Refused
            }
            Err(UpstreamError::Unreachable(_)) => Outcome::Refused,
            Ok(_) => Outcome::Unclear,
            Err(_) => Outcome::Unanswered,
        };
        let failed = |outcome| match outcome {
            Ok(r) => SubmitError::Upstream(Box::new(r)),
            Err(e) => SubmitError::UpstreamFailed(e),
        };
        if let Outcome::Refused = kind {
            app.ledger.release(&sub.sub_id, "the upstream refused the batch").await?;
            return Err(failed(outcome));
        }
        let rec =
            app.ledger.batch(&sub.sub_id).await?.ok_or_else(|| {
                SubmitError::Internal("a submission vanished from the ledger".into())
            })?;
        match crate::recover::find_upstream_match(app, &rec).await {
            Ok(Match::Found(id)) => {
                crate::recover::adopt(app, &rec, &id).await.map_err(SubmitError::Internal)?;
                return retrieve(provider, &id, call).await;
            }
            Ok(Match::Absent) if matches!(kind, Outcome::Unclear) => {
                if attempt < provider.max_attempts() {
                    provider.pause(attempt, outcome.as_ref().ok()).await;
                    continue;
                }
                app.ledger.release(&sub.sub_id, "the upstream failed to create the batch").await?;
            }
            // Undecided, unanswered or the list failed: the tracker decides later.
            Ok(_) => {}
            Err(e) => tracing::warn!(sub_id = %sub.sub_id, error = %e, "reconciliation deferred"),
        }
        return Err(failed(outcome));
    }
}

/// Records the upstream's acceptance.
async fn accepted(app: &App, sub: &NewSubmission, id: &str) -> Result<(), SubmitError> {
    let next = sub
        .submitted_at
        .saturating_add(SignedDuration::from_millis(app.settings.tracker.poll_min_ms as i64))
        .unwrap_or(sub.submitted_at);
    app.ledger.mark_submitted(&sub.sub_id, id, next).await?;
    app.metrics.submitted(&sub.project, &sub.provider);
    // Only a batch already due needs the tracker now: any other is found by its next
    // round (every `poll_min_ms`, at most 1 s), and a wake per create would run a claim
    // query per create for nothing.
    if next <= app.clock.now() {
        app.wake_tracker.notify_one();
    }
    tracing::info!(project = %sub.project, provider = %sub.provider, upstream_id = %id, requests = sub.request_count, hold_usd = %sub.hold.usd.usd_exact(), "batch accepted");
    Ok(())
}

async fn retrieve(
    provider: &dyn Provider,
    id: &str,
    call: &CreateCall,
) -> Result<UpstreamReply, SubmitError> {
    let reply = provider.retrieve(id, &call.fwd).await?;
    if !reply.status.is_success() {
        return Err(SubmitError::Upstream(Box::new(reply)));
    }
    Ok(reply)
}

/// The client retried a create we already have: answer with the first batch, or None
/// when the first attempt failed without creating anything (the retry is new).
async fn answer_duplicate(
    app: &App,
    provider: &dyn Provider,
    mut rec: BatchRecord,
    call: &CreateCall,
) -> Result<Option<UpstreamReply>, SubmitError> {
    // Bounded wait for the first attempt's create to finish (it may still be uploading).
    for _ in 0..600 {
        if rec.state != BatchState::Submitting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        rec = app.ledger.batch(&rec.sub_id).await?.unwrap_or(rec);
    }
    match (rec.state, rec.upstream_id.as_deref()) {
        (BatchState::InFlight | BatchState::Settled, Some(id)) => {
            // What we read may not be on disk yet: never answer from it before it is.
            app.ledger.durable().await?;
            tracing::info!(upstream_id = %id, "client retried a create; answering with the first batch");
            let mut reply = retrieve(provider, id, call).await?;
            // Tell the client too (surfaces pass these on): this is the batch its first
            // attempt made, not a new one.
            let h = &mut reply.headers;
            h.insert("x-batchcost-deduplicated", reqwest::header::HeaderValue::from_static("true"));
            let at = crate::clock::rfc3339_micros(rec.submitted_at);
            if let Ok(v) = reqwest::header::HeaderValue::from_str(&at) {
                h.insert("x-batchcost-original-submitted-at", v);
            }
            Ok(Some(reply))
        }
        (BatchState::Failed, _) => Ok(None),
        _ => Err(SubmitError::Conflict(
            "an identical batch from this project is still being submitted; retry shortly".into(),
        )),
    }
}

/// The worst case in every unit a budget can limit.
pub fn hold_of(est: &Estimate) -> Hold {
    Hold {
        usd: est.worst.cost,
        input_tokens: est.models.iter().map(|m| m.input_tokens_upper).sum(),
        output_tokens: est.models.iter().map(|m| m.output_tokens_worst).sum(),
    }
}

/// The current window of every budget covering a batch of `project` on `provider`. With
/// an estimate, a budget whose `models` filter selects none of the batch's models is left
/// out, and one that selects some holds only their share.
pub fn windows_for(
    app: &App,
    provider: &str,
    project: &str,
    est: Option<&Estimate>,
    now: Timestamp,
) -> Vec<WindowRef> {
    let mut out = Vec::new();
    for b in applicable_to(&app.settings.budgets, project, provider) {
        let mut w = window_ref(b, &app.settings.timezone, now);
        if let (Some(canonical), Some(est)) = (selected_models(b, &app.pricing, provider, now), est)
        {
            let picked: Vec<_> =
                est.models.iter().filter(|m| canonical.contains(&m.model)).collect();
            if picked.is_empty() {
                continue;
            }
            if picked.len() < est.models.len() {
                w.hold = Some(Hold {
                    usd: picked.iter().map(|m| m.worst.cost).sum(),
                    input_tokens: picked.iter().map(|m| m.input_tokens_upper).sum(),
                    output_tokens: picked.iter().map(|m| m.output_tokens_worst).sum(),
                });
            }
        }
        out.push(w);
    }
    out
}

/// Which of a window's limits `hold` would cross, if any.
pub fn blocked_by(w: &WindowState, hold: &Hold) -> Option<&'static str> {
    let over = |limit: Option<i128>, used: i128, add: i128| limit.is_some_and(|l| used + add > l);
    if over(w.limit.map(|l| l.picos()), (w.spent + w.reserved).picos(), hold.usd.picos()) {
        return Some("usd");
    }
    let tok = |l: Option<u64>| l.map(|v| v as i128);
    if over(
        tok(w.limit_input_tokens),
        (w.spent_input_tokens + w.reserved_input_tokens) as i128,
        hold.input_tokens as i128,
    ) {
        return Some("input_tokens");
    }
    if over(
        tok(w.limit_output_tokens),
        (w.spent_output_tokens + w.reserved_output_tokens) as i128,
        hold.output_tokens as i128,
    ) {
        return Some("output_tokens");
    }
    None
}

/// `sub_` and 32 hex digits: the creating clock's milliseconds (12 digits), then 80 bits
/// hashed from the moment, this process and the body. Ids that follow one another in
/// time land at the end of every index keyed by them (the batches, their reservations and
/// bounds), on pages already in cache, where random ids each dirtied a page of their own
/// somewhere in the middle, and split it in time.
fn new_sub_id(app: &App, body_hash: &str) -> String {
    let n = app.seq.fetch_add(1, Ordering::Relaxed);
    let now = Timestamp::now();
    let t = now.as_nanosecond();
    let h = xxhash_rust::xxh3::xxh3_128(
        format!("{t}/{n}/{}/{body_hash}", std::process::id()).as_bytes(),
    );
    sub_id_at(now.as_millisecond(), h)
}

fn sub_id_at(ms: i64, h: u128) -> String {
    let ms = u64::try_from(ms).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("sub_{ms:012x}{:020x}", h >> 48)
}

impl From<crate::approvals::GateError> for SubmitError {
    fn from(e: crate::approvals::GateError) -> Self {
        match e {
            crate::approvals::GateError::Ledger(e) => e.into(),
            crate::approvals::GateError::Approval(r) => SubmitError::Approval(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sub_id_at;

    #[test]
    fn sub_ids_keep_their_form_and_sort_by_time() {
        let a = sub_id_at(1_764_547_200_000, u128::MAX);
        let b = sub_id_at(1_764_547_200_001, 0);
        for id in [&a, &b] {
            let hex = id.strip_prefix("sub_").expect("sub_ prefix");
            assert_eq!(hex.len(), 32, "{id}");
            assert!(hex.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{id}");
        }
        assert!(a < b, "a later millisecond sorts after, whatever the hashed part: {a} {b}");
        assert_ne!(sub_id_at(7, 1 << 48), sub_id_at(7, 2 << 48), "the hashed part is kept");
    }
}
