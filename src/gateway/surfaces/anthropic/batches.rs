//! The Anthropic batch routes other than listing: create (priced here, admitted by the
//! neutral submit), retrieve, cancel, delete, results and count_tokens.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use bytes::Bytes;
use jiff::Timestamp;
use serde_json::Value;

use super::surface::{Surface, batch_reply, forward, json, owned};
use crate::app::App;
use crate::estimate::{BodyFormat, Estimate, EstimateError, EstimateOptions};
use crate::gateway::body_early::{Early, Read};
use crate::gateway::error::ApiError;
use crate::gateway::{auth, body};
use crate::ledger::{BatchRecord, BatchState};
use crate::metrics::{RejectReason, UNKNOWN_PROJECT};
use crate::providers::anthropic::client::{BATCHES_PATH, UpstreamReply, batch_path};
use crate::providers::anthropic::estimate::{HeadWalk, estimate_after_head, estimate_bytes};
use crate::providers::anthropic::wire::MessageBatch;
use crate::providers::{BatchPhase, CreateCall};
use crate::submit::{Priced, submit};

/// Bodies up to this size are priced on the async worker (tens of microseconds).
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// Bodies declaring at least this many bytes are priced piece by piece as they arrive
/// (`body_early`); a smaller one is priced after its last byte (in under 10 ms).
const EARLY_PRICE_BYTES: u64 = 16 << 20;

/// Settles in the background once a client has seen the batch end.
fn settle_if_ended(s: &Surface, rec: &BatchRecord, body: &[u8]) {
    let ended = s.provider.status(body).is_ok_and(|b| b.phase == BatchPhase::Ended);
    if ended && rec.state == BatchState::InFlight {
        crate::settle::spawn(s.app.clone(), rec.clone());
    }
}

/// Runs the submission as its own task, detached from the connection: a client that
/// disconnects mid-create (or a shutdown closing its connection) must not cancel it between
/// the upstream's acceptance and the ledger write. The task ends recorded or released.
pub async fn create(State(s): State<Surface>, req: Request) -> Result<Response, ApiError> {
    let app = s.app.clone();
    let task = app.tasks.spawn(create_task(s, req));
    task.await.map_err(|e| ApiError::Internal(format!("submission task failed: {e}")))?
}

/// `POST /v1/messages/batches`: authenticate, price, submit; rejections counted.
async fn create_task(s: Surface, req: Request) -> Result<Response, ApiError> {
    let (parts, raw) = req.into_parts();
    let request_id = crate::gateway::request_id::of(&parts.extensions);
    let project = auth::project(&s.app, &parts.headers).inspect_err(|e| {
        // Only submissions count as rejected submissions; a bad key on a read does not.
        s.app.metrics.rejected(UNKNOWN_PROJECT, RejectReason::Unauthenticated);
        crate::gateway::rejections::log(UNKNOWN_PROJECT, e, &request_id);
    })?;
    let result = create_batch(&s, &project, &parts.headers, &parts.uri, raw, &request_id).await;
    if let Err(e) = &result {
        // Once at INFO with the project, the reason and the amounts (issue 16).
        crate::gateway::rejections::log(&project, e, &request_id);
        if let Some(r) = e.reject_reason() {
            s.app.metrics.rejected(&project, r);
        }
    }
    result
}

async fn create_batch(
    s: &Surface,
    project: &str,
    headers: &HeaderMap,
    uri: &Uri,
    raw: Body,
    request_id: &str,
) -> Result<Response, ApiError> {
    let app = &s.app;
    // The retry-dedupe key, `xxh3_128` of the body, hashed as it streams in.
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    let limit = app.settings.limits.max_body_bytes;
    let name = price_provider(s);
    let now = app.clock.now();
    // A large body is priced as it arrives (`body_early`), while a walk is free.
    let large = body::declared(headers).is_some_and(|n| n >= EARLY_PRICE_BYTES);
    let permit = large.then(|| app.early_walks.clone().try_acquire_owned().ok()).flatten();
    let early_min = if permit.is_some() { EARLY_PRICE_BYTES } else { u64::MAX };
    let early = {
        let app = app.clone();
        move |e: Early| {
            let priced = price_early(&app, name, e, now);
            drop(permit);
            priced
        }
    };
    let read =
        body::read_limited_early(headers, raw, limit, |c| hash.update(c), early_min, early).await?;
    let body_hash = format!("{:032x}", hash.digest128());
    let (body, est) = match read {
        Read::Early(Some(priced)) => priced,
        Read::Early(None) => return Err(ApiError::Internal("the body's rest never came".into())),
        // A small body parses in less time than the hand-off to a blocking thread and
        // back costs (two thread switches).
        Read::Whole(body) if body.len() <= INLINE_PARSE_BYTES => {
            let est = price(app, name, &body, now);
            (body, est)
        }
        // Parsing up to 256 MB is CPU work: keep it off the async workers so small
        // requests arriving meanwhile are still answered at once.
        Read::Whole(body) => {
            let (app, whole) = (app.clone(), body.clone());
            let est = tokio::task::spawn_blocking(move || price(&app, name, &whole, now))
                .await
                .map_err(|e| ApiError::Internal(format!("estimator task failed: {e}")))?;
            (body, est)
        }
    };
    let est = est?;
    let call = CreateCall { path: BATCHES_PATH.into(), body, fwd: forward(headers, uri) };
    let priced = Priced { project, estimate: &est, body_hash, now, request_id };
    let reply =
        submit(app, &s.provider, priced, call).await.map_err(|e| ApiError::from_submit(e, now))?;
    batch_reply(s, reply).map(|(_, r)| r)
}

/// The price table's provider for this upstream: its name (`pricing.toml` rows with
/// `provider = NAME`). Leaked once per upstream name, a bounded configured set, because
/// the estimator takes a `&'static str`.
fn price_provider(s: &Surface) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    names
        .entry(s.name().to_string())
        .or_insert_with(|| Box::leak(s.name().to_string().into_boxed_str()))
}

/// On the blocking thread of a large body: the requests walked piece by piece as they
/// arrive, then the whole priced; `None` if the body never came whole.
fn price_early(
    app: &App,
    provider: &'static str,
    mut early: Early,
    now: Timestamp,
) -> Option<(Bytes, Result<Estimate, ApiError>)> {
    let opts = options(app, provider, now);
    let mut walk = HeadWalk::new(&app.pricing, &opts);
    while !early.arrive()? {
        walk.more(early.head());
    }
    let body = early.into_body();
    let est = checked(&body, |b| estimate_after_head(b, walk.done(), &app.pricing, &opts));
    Some((body, est))
}

fn options(app: &App, provider: &'static str, now: Timestamp) -> EstimateOptions {
    EstimateOptions::new(now, app.settings.limits.expected_output_fraction).for_provider(provider)
}

/// Estimates and checks the body is a create request (not JSONL).
fn price(
    app: &App,
    provider: &'static str,
    body: &Bytes,
    now: Timestamp,
) -> Result<Estimate, ApiError> {
    let opts = options(app, provider, now);
    checked(body, |b| estimate_bytes(b, &app.pricing, &opts))
}

/// `estimate(body)` of a body that is a JSON object, whose estimate says it is one.
fn checked(
    body: &[u8],
    estimate: impl FnOnce(&[u8]) -> Result<Estimate, EstimateError>,
) -> Result<Estimate, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::InvalidRequest(
            "body: expected a JSON object with `requests`".into(),
        ));
    }
    let est = estimate(body).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    if est.format != BodyFormat::Json {
        return Err(ApiError::InvalidRequest(
            "body: expected a JSON object with `requests`, not JSON Lines".into(),
        ));
    }
    Ok(est)
}

/// Retrieve or cancel: the caller's own batch, relayed with `results_url` rewritten, and
/// settled in the background if the client has just seen it end.
async fn relay(
    s: &Surface,
    id: &str,
    headers: &HeaderMap,
    uri: &Uri,
    op: &str,
    method: Method,
    path: String,
) -> Result<Response, ApiError> {
    let project = auth::project(&s.app, headers)?;
    let rec = owned(s, &project, id).await?;
    let reply = s.anthropic.client.call(op, method, &path, &forward(headers, uri)).await?;
    let body = reply.body.clone();
    let (_, resp) = batch_reply(s, reply)?;
    settle_if_ended(s, &rec, &body);
    Ok(resp)
}

pub async fn retrieve(
    State(s): State<Surface>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    relay(&s, &id, &headers, &uri, "retrieve", Method::GET, batch_path(&id)).await
}

pub async fn cancel(
    State(s): State<Surface>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let path = format!("{}/cancel", batch_path(&id));
    let resp = relay(&s, &id, &headers, &uri, "cancel", Method::POST, path).await?;
    s.app.wake_tracker.notify_one();
    Ok(resp)
}

/// Deleting a batch still in progress is refused at once with the upstream's own answer
/// (400 `invalid_request_error`: cancel it first), never a 409 the SDKs would retry. An
/// ended batch is settled first: deleting drops its results upstream for good.
pub async fn delete(
    State(s): State<Surface>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let project = auth::project(&s.app, &headers)?;
    let rec = owned(&s, &project, &id).await?;
    let fwd = forward(&headers, &uri);
    if rec.state == BatchState::InFlight {
        let reply = s.provider.retrieve(&id, &fwd).await?;
        if !reply.status.is_success() {
            return Err(ApiError::upstream(reply));
        }
        let ended = s.provider.status(&reply.body).is_ok_and(|b| b.phase == BatchPhase::Ended);
        if !ended {
            return Err(ApiError::InvalidRequest(format!(
                "batch `{id}` is still in progress; cancel it first and delete it once it has ended"
            )));
        }
        let recorded = crate::settle::settle_now(&s.app, &rec).await.map_err(|e| {
            ApiError::Conflict(format!("batch cannot be deleted before it is settled: {e}"))
        })?;
        // Not recorded by this call: settled already, or another task is reading the
        // results right now and deleting would cut them off.
        let settled = recorded
            || s.app
                .ledger
                .batch(&rec.sub_id)
                .await?
                .is_some_and(|r| r.state == BatchState::Settled);
        if !settled {
            return Err(ApiError::Conflict(
                "batch cannot be deleted while it is being settled; retry shortly".into(),
            ));
        }
    }
    let reply = s.anthropic.client.call("delete", Method::DELETE, &batch_path(&id), &fwd).await?;
    if !reply.status.is_success() {
        return Err(ApiError::upstream(reply));
    }
    let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    Ok(json(reply.status, &reply.headers, &value))
}

/// Streams the upstream's JSONL through without holding it.
pub async fn results(
    State(s): State<Surface>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let project = auth::project(&s.app, &headers)?;
    owned(&s, &project, &id).await?;
    let fwd = forward(&headers, &uri);
    let reply = s.provider.retrieve(&id, &fwd).await?;
    if !reply.status.is_success() {
        return Err(ApiError::upstream(reply));
    }
    let batch: MessageBatch = serde_json::from_slice(&reply.body)
        .map_err(|_| ApiError::Internal("upstream sent an unreadable batch".into()))?;
    let path = s.anthropic.results_path(&batch);
    let upstream = s.anthropic.client.results(&path, &fwd).await?;
    let status = upstream.status();
    if !status.is_success() {
        let headers = upstream.headers().clone();
        let body = upstream.bytes().await.unwrap_or_default();
        return Err(ApiError::upstream(UpstreamReply { status, headers, body }));
    }
    let mut resp = Response::new(Body::from_stream(upstream.bytes_stream()));
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/x-jsonl"));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename*=utf-8''{id}_results.jsonl"))
    {
        h.insert("content-disposition", v);
    }
    Ok(resp)
}

/// Passed through for SDK users who count before they submit; the project key is checked.
pub async fn count_tokens(State(s): State<Surface>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    auth::project(&s.app, &parts.headers)?;
    let body = body::read_limited(&parts.headers, body, 32 * 1024 * 1024).await?;
    let fwd = forward(&parts.headers, &parts.uri);
    let reply = s
        .anthropic
        .client
        .post_json("count_tokens", "/v1/messages/count_tokens", body, &fwd)
        .await?;
    if !reply.status.is_success() {
        return Err(ApiError::upstream(reply));
    }
    let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    Ok(json(reply.status, &reply.headers, &value))
}
