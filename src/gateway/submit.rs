//! Batch submission: validate and price the worst case, reserve it against every budget in
//! one ledger step (or refuse without calling the upstream), forward, record. A create
//! whose outcome is unknown (timeout, lost answer, 5xx) is never blindly retried: the
//! upstream's batch list decides whether it exists, so one client request makes at most
//! one upstream batch.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::batches::{forward, json, rewrite};
use super::error::{ApiError, BudgetRefusal};
use super::{App, auth, body};
use crate::budgets::{applicable, window_ref};
use crate::estimate::{Estimate, EstimateOptions, estimate_bytes};
use crate::ledger::{Admit, BatchRecord, BatchState, Hold, NewSubmission, WindowRef, WindowState};
use crate::metrics::{RejectReason, UNKNOWN_PROJECT};
use crate::providers::ANTHROPIC;
use crate::providers::anthropic::client::{
    Forward, UpstreamError, UpstreamReply, refused_outright,
};
use crate::settle::{HoldBreakdown, ModelHold};
use crate::tracker::Match;

/// `POST /v1/messages/batches`
pub async fn create(app: Arc<App>, req: Request) -> Result<Response, ApiError> {
    let (parts, raw) = req.into_parts();
    let project = auth::project(&app, &parts.headers).inspect_err(|_| {
        // Only submissions count as rejected submissions; a bad key on a read does not.
        app.metrics.rejected(UNKNOWN_PROJECT, RejectReason::Unauthenticated);
    })?;
    let result = submit(&app, &project, &parts.headers, &parts.uri, raw).await;
    if let Err(e) = &result {
        let reason = match e {
            ApiError::TooLarge(_) => Some(RejectReason::TooLarge),
            ApiError::InvalidRequest(_) => Some(RejectReason::InvalidRequest),
            ApiError::BudgetExceeded(_) => Some(RejectReason::BudgetExceeded),
            ApiError::ApprovalRequired(_) => Some(RejectReason::ApprovalRequired),
            ApiError::Upstream(_) | ApiError::UpstreamFailed(_) => {
                Some(RejectReason::UpstreamError)
            }
            _ => None,
        };
        if let Some(r) = reason {
            app.metrics.rejected(&project, r);
        }
    }
    result
}

/// Removes the "create in progress" mark however the submission ends.
struct InProgress<'a>(&'a App, String);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.submitting.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.1);
    }
}

async fn submit(
    app: &Arc<App>,
    project: &str,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
    raw: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = body::read_limited(headers, raw, app.settings.limits.max_body_bytes).await?;
    let fwd = forward(headers, uri);
    let now = app.clock.now();
    // Parsing up to 256 MB is CPU work: keep it off the async workers so small requests
    // arriving meanwhile are still answered at once.
    let (est, body_hash) = {
        let app = app.clone();
        let body = body.clone();
        tokio::task::spawn_blocking(move || {
            let est = price(&app, &body, now);
            (est, format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&body)))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("estimator task failed: {e}")))?
    };
    let est = est?;
    let mut windows = windows_for(app, project, now);
    let bounds = crate::holds::bounds(app, &est, now);
    crate::holds::apply(app, project, &bounds, hold_of(&est), &mut windows).await;
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
    let sub = NewSubmission {
        sub_id: new_sub_id(app, &body_hash),
        project: project.to_string(),
        provider: ANTHROPIC.to_string(),
        submitted_at: now,
        request_count: est.requests,
        body_hash,
        custom_id_fingerprint: est.custom_id_fingerprint,
        hold: hold_of(&est),
        windows,
        estimate_json: serde_json::to_string(&breakdown).unwrap_or_default(),
        dedupe_since: now
            .saturating_sub(SignedDuration::from_secs(
                app.settings.limits.dedupe_window_secs as i64,
            ))
            .unwrap_or(Timestamp::MIN),
    };
    // Holds above a budget's `approval_above_usd` need an approval of this very body.
    let approval = super::approvals::gate(app, &sub, now).await?;
    let (result, admitted) = admit_loop(app, &sub, body, &fwd, now).await;
    super::approvals::settle_use(app, approval, &sub.sub_id, admitted).await;
    if admitted {
        if let Err(e) = app.ledger.record_bounds(&sub.sub_id, &bounds).await {
            tracing::warn!(error = %e, "batch bounds not kept; it will not calibrate holds");
        }
        if let Err(e) = crate::notify::record_crossings(app).await {
            tracing::warn!(error = %e, "threshold crossings deferred to the notification worker");
        }
    }
    result
}

/// Admits and forwards; the flag says whether the ledger admitted this submission as new
/// (whatever the upstream then did with it).
async fn admit_loop(
    app: &Arc<App>,
    sub: &NewSubmission,
    body: Bytes,
    fwd: &Forward,
    now: Timestamp,
) -> (Result<Response, ApiError>, bool) {
    let sub = sub.clone();
    // A retry whose first attempt failed outright finds nothing to answer with: admit it
    // as new (bounded, in case identical retries race each other).
    for _ in 0..3 {
        let admit = match app.ledger.admit(&sub).await {
            Ok(a) => a,
            Err(e) => return (Err(e.into()), false),
        };
        match admit {
            Admit::Refused(w) => {
                let hold = sub.windows.iter().find(|r| r.budget == w.budget).and_then(|r| r.hold);
                return (Err(refusal(&w, &hold.unwrap_or(sub.hold), now)), false);
            }
            Admit::Admitted => {
                app.submitting.lock().unwrap_or_else(|e| e.into_inner()).insert(sub.sub_id.clone());
                let _mark = InProgress(app, sub.sub_id.clone());
                app.failpoints.hit("after_admit").await;
                return (forward_create(app, &sub, body, fwd).await, true);
            }
            Admit::Duplicate(rec) => match answer_duplicate(app, rec, fwd).await {
                Ok(Some(resp)) => return (Ok(resp), false),
                Ok(None) => {}
                Err(e) => return (Err(e), false),
            },
        }
    }
    let busy = "identical batches from this project keep failing; retry shortly";
    (Err(ApiError::Conflict(busy.into())), false)
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
    sub: &NewSubmission,
    body: Bytes,
    fwd: &Forward,
) -> Result<Response, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = app.upstream.create(body.clone(), fwd).await;
        if let Ok(reply) = &outcome {
            if let Some(id) = batch_id(reply).filter(|_| reply.status.is_success()) {
                app.failpoints.hit("after_upstream_accept").await;
                return accepted(app, sub, &id, reply).await;
            }
        }
        let kind = match &outcome {
            Ok(r) if r.status.is_client_error() || refused_outright(r.status) => Outcome::Refused,
            Err(UpstreamError::Unreachable(_)) => Outcome::Refused,
            Ok(_) => Outcome::Unclear,
            Err(_) => Outcome::Unanswered,
        };
        let failed = |outcome| match outcome {
            Ok(r) => ApiError::upstream(r),
            Err(e) => ApiError::UpstreamFailed(e),
        };
        if let Outcome::Refused = kind {
            app.ledger.release(&sub.sub_id, "the upstream refused the batch").await?;
            return Err(failed(outcome));
        }
        let rec =
            app.ledger.batch(&sub.sub_id).await?.ok_or_else(|| {
                ApiError::Internal("a submission vanished from the ledger".into())
            })?;
        match crate::tracker::find_upstream_match(app, &rec).await {
            Ok(Match::Found(id)) => {
                crate::tracker::adopt(app, &rec, &id).await.map_err(ApiError::Internal)?;
                return retrieve_response(app, &id, fwd).await;
            }
            Ok(Match::Absent) if matches!(kind, Outcome::Unclear) => {
                if attempt < app.settings.upstream_max_attempts {
                    app.upstream.pause(attempt, outcome.as_ref().ok()).await;
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

/// Records the upstream's acceptance and answers with its batch.
async fn accepted(
    app: &App,
    sub: &NewSubmission,
    id: &str,
    reply: &UpstreamReply,
) -> Result<Response, ApiError> {
    let next = sub
        .submitted_at
        .saturating_add(SignedDuration::from_millis(app.settings.tracker.poll_min_ms as i64))
        .unwrap_or(sub.submitted_at);
    app.ledger.mark_submitted(&sub.sub_id, id, next).await?;
    app.metrics.submitted(&sub.project, ANTHROPIC);
    app.wake_tracker.notify_one();
    tracing::info!(project = %sub.project, upstream_id = %id, requests = sub.request_count, hold_usd = %sub.hold.usd.usd_exact(), "batch accepted");
    batch_response(app, reply)
}

/// Estimates and checks the body is a create request (not JSONL).
fn price(app: &App, body: &Bytes, now: Timestamp) -> Result<Estimate, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::InvalidRequest(
            "body: expected a JSON object with `requests`".into(),
        ));
    }
    let opts = EstimateOptions::new(now, app.settings.limits.expected_output_fraction)
        .for_provider(ANTHROPIC);
    let est = estimate_bytes(body, &app.pricing, &opts)
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    if est.format != crate::estimate::BodyFormat::Json {
        return Err(ApiError::InvalidRequest(
            "body: expected a JSON object with `requests`, not JSON Lines".into(),
        ));
    }
    Ok(est)
}

/// The worst case in every unit a budget can limit.
pub fn hold_of(est: &Estimate) -> Hold {
    Hold {
        usd: est.worst.cost,
        input_tokens: est.models.iter().map(|m| m.input_tokens_upper).sum(),
        output_tokens: est.models.iter().map(|m| m.output_tokens_worst).sum(),
    }
}

/// The current window of every budget covering `project`.
pub fn windows_for(app: &App, project: &str, now: Timestamp) -> Vec<WindowRef> {
    applicable(&app.settings.budgets, project)
        .map(|b| window_ref(b, &app.settings.timezone, now))
        .collect()
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

fn refusal(w: &WindowState, hold: &Hold, now: Timestamp) -> ApiError {
    let secs = w.end.duration_since(now).as_secs().max(1) as u64;
    ApiError::BudgetExceeded(Box::new(BudgetRefusal {
        name: w.budget.clone(),
        period: w.period.as_str().to_string(),
        limit_usd: w.limit.map(|l| l.usd_exact()),
        spent_usd: w.spent.usd_exact(),
        reserved_usd: w.reserved.usd_exact(),
        requested_usd: hold.usd.usd_exact(),
        resets_at: crate::clock::rfc3339_micros(w.end),
        limit_kind: blocked_by(w, hold).unwrap_or("usd").to_string(),
        retry_after_secs: secs,
    }))
}

fn batch_id(reply: &UpstreamReply) -> Option<String> {
    let v: Value = serde_json::from_slice(&reply.body).ok()?;
    let id = v.get("id")?.as_str()?;
    (!id.is_empty()).then(|| id.to_string())
}

fn batch_response(app: &App, reply: &UpstreamReply) -> Result<Response, ApiError> {
    let mut value: Value = serde_json::from_slice(&reply.body)
        .map_err(|_| ApiError::Internal("upstream sent a batch object that is not JSON".into()))?;
    rewrite(app, &mut value);
    Ok(json(StatusCode::OK, &reply.headers, &value))
}

async fn retrieve_response(app: &App, id: &str, fwd: &Forward) -> Result<Response, ApiError> {
    let reply = app
        .upstream
        .call("retrieve", Method::GET, &format!("/v1/messages/batches/{id}"), fwd)
        .await?;
    if !reply.status.is_success() {
        return Err(ApiError::upstream(reply));
    }
    batch_response(app, &reply)
}

/// The client retried a create we already have: answer with the first batch, or None
/// when the first attempt failed without creating anything (the retry is new).
async fn answer_duplicate(
    app: &App,
    mut rec: BatchRecord,
    fwd: &Forward,
) -> Result<Option<Response>, ApiError> {
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
            tracing::info!(upstream_id = %id, "client retried a create; answering with the first batch");
            retrieve_response(app, id, fwd).await.map(Some)
        }
        (BatchState::Failed, _) => Ok(None),
        _ => Err(ApiError::Conflict(
            "an identical batch from this project is still being submitted; retry shortly".into(),
        )),
    }
}

fn new_sub_id(app: &App, body_hash: &str) -> String {
    let n = app.seq.fetch_add(1, Ordering::Relaxed);
    let t = Timestamp::now().as_nanosecond();
    let h = xxhash_rust::xxh3::xxh3_128(
        format!("{t}/{n}/{}/{body_hash}", std::process::id()).as_bytes(),
    );
    format!("sub_{h:032x}")
}
