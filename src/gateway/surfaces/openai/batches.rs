//! `/v1/batches`: create (priced from the input file's stored estimate, reserved against
//! every budget that applies, stamped with the submission id in `metadata`, then
//! forwarded), retrieve, list (from the ledger) and cancel, for the caller's own batches.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::files::{owned_file, record_outputs};
use super::{OpenAiError, Surface};
use crate::gateway::error::ApiError;
use crate::gateway::{auth, body};
use crate::ledger::{BatchRecord, BatchState, ListCursor};
use crate::metrics::{RejectReason, UNKNOWN_PROJECT};
use crate::providers::openai::batchfile::FileSummary;
use crate::providers::openai::client::{BATCHES_PATH, batch_path};
use crate::providers::openai::status::{PROJECT_KEY, SUBMISSION_KEY, batch_object};
use crate::providers::{CreateCall, Forward, UpstreamReply};
use crate::submit::{Priced, new_submission_id, submit_as};

/// Largest create body (a few ids and metadata).
const MAX_CREATE_BYTES: u64 = 1 << 20;
/// Batch objects fetched from the upstream at once for one list page.
const FETCH_CONCURRENCY: usize = 8;
/// Metadata pairs OpenAI allows; the gateway uses two of them.
const MAX_METADATA: usize = 16;

#[derive(Deserialize)]
struct CreateBody {
    input_file_id: Option<String>,
    endpoint: Option<String>,
    completion_window: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    output_expires_after: Option<Value>,
}

/// The batch object in an upstream answer, unwrapped (Together's `{"job": ...}`).
fn batch_json(reply: &UpstreamReply) -> Result<Value, OpenAiError> {
    let v: Value = serde_json::from_slice(&reply.body)
        .map_err(|_| ApiError::Internal("upstream sent a batch object that is not JSON".into()))?;
    Ok(batch_object(&v).clone())
}

fn answer(reply: UpstreamReply) -> Result<(Value, Response), OpenAiError> {
    if !reply.status.is_success() {
        return Err(ApiError::upstream(reply).into());
    }
    let v = batch_json(&reply)?;
    let mut resp = (StatusCode::OK, axum::Json(&v)).into_response();
    if let Some(rid) = reply.headers.get("x-request-id") {
        resp.headers_mut().insert("x-request-id", rid.clone());
    }
    Ok((v, resp))
}

/// The caller's own batch, or 404 exactly as if it did not exist.
async fn owned(s: &Surface, project: &str, id: &str) -> Result<BatchRecord, OpenAiError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid {
        return Err(OpenAiError::not_found("Batch", id));
    }
    match s.app.ledger.batch_by_upstream(s.name(), id).await? {
        Some(rec) if rec.project == project => Ok(rec),
        _ => Err(OpenAiError::not_found("Batch", id)),
    }
}

/// After a client saw the batch: its output files become readable, and an ended batch
/// is settled in the background.
async fn observed(s: &Surface, rec: &BatchRecord, v: &Value) {
    let ended = crate::providers::openai::status::from_value(v)
        .is_ok_and(|b| b.phase == crate::providers::openai::status::Phase::Ended);
    if ended {
        record_outputs(s, &rec.project, v).await;
        if rec.state == BatchState::InFlight {
            crate::settle::spawn(s.app.clone(), rec.clone());
        }
    }
}

/// `POST /v1/batches`, detached from the connection like every create: a client that
/// disconnects must not cancel it between the upstream's acceptance and the ledger write.
pub async fn create(State(s): State<Surface>, req: Request) -> Result<Response, OpenAiError> {
    let app = s.app.clone();
    let task = app.tasks.spawn(async move {
        let (parts, raw) = req.into_parts();
        let request_id = crate::gateway::request_id::of(&parts.extensions);
        let project = auth::project(&s.app, &parts.headers).inspect_err(|e| {
            s.app.metrics.rejected(UNKNOWN_PROJECT, RejectReason::Unauthenticated);
            crate::gateway::rejections::log(UNKNOWN_PROJECT, e, &request_id);
        })?;
        let result = create_batch(&s, &project, &parts.headers, raw, &request_id).await;
        if let Err(e) = &result {
            crate::gateway::rejections::log(&project, &e.inner, &request_id);
            if let Some(r) = e.inner.reject_reason() {
                s.app.metrics.rejected(&project, r);
            }
        }
        result
    });
    task.await.map_err(|e| ApiError::Internal(format!("submission task failed: {e}")))?
}

async fn create_batch(
    s: &Surface,
    project: &str,
    headers: &HeaderMap,
    raw: Body,
    request_id: &str,
) -> Result<Response, OpenAiError> {
    let app = &s.app;
    let bytes = body::read_limited(headers, raw, MAX_CREATE_BYTES).await?;
    let b: CreateBody = serde_json::from_slice(&bytes)
        .map_err(|e| OpenAiError::invalid("body", format!("body: expected a JSON object: {e}")))?;
    let file_id = b
        .input_file_id
        .ok_or_else(|| OpenAiError::invalid("input_file_id", "input_file_id: is required"))?;
    let endpoint =
        b.endpoint.ok_or_else(|| OpenAiError::invalid("endpoint", "endpoint: is required"))?;
    let window = b.completion_window.ok_or_else(|| {
        OpenAiError::invalid("completion_window", "completion_window: is required (\"24h\")")
    })?;
    let file = owned_file(s, project, &file_id).await.map_err(|mut e| {
        e.param = Some("input_file_id".into());
        e
    })?;
    let summary: FileSummary =
        file.estimate_json.as_deref().and_then(|j| serde_json::from_str(j).ok()).ok_or_else(
            || {
                OpenAiError::invalid(
                    "input_file_id",
                    format!("input_file_id: {file_id} is not a batch input file"),
                )
            },
        )?;
    if summary.endpoint != endpoint {
        return Err(OpenAiError::invalid(
            "endpoint",
            format!(
                "endpoint: the lines of {file_id} call {}, not {}",
                summary.endpoint,
                endpoint.chars().take(60).collect::<String>()
            ),
        ));
    }
    let mut metadata = b.metadata.unwrap_or_default();
    if metadata.keys().any(|k| k.starts_with("batchcost_")) {
        return Err(OpenAiError::invalid(
            "metadata",
            "metadata: keys starting with `batchcost_` are the gateway's",
        ));
    }
    if metadata.len() > MAX_METADATA - 2 {
        return Err(OpenAiError::invalid(
            "metadata",
            format!("metadata: at most {} pairs (the gateway adds two)", MAX_METADATA - 2),
        ));
    }
    let now = app.clock.now();
    let price = app.pricing.resolve_for(s.name(), &summary.model, now).ok_or_else(|| {
        OpenAiError::invalid(
            "input_file_id",
            format!("model {:?} is no longer in the price table for {}", summary.model, s.name()),
        )
    })?;
    let est = summary.estimate(&price, app.settings.limits.expected_output_fraction);
    // Retries of the same create (the SDKs retry POSTs) are the same batch.
    let body_hash = format!(
        "{:032x}",
        xxhash_rust::xxh3::xxh3_128(format!("openai/{file_id}/{endpoint}").as_bytes())
    );
    let sub_id = new_submission_id(app, &body_hash);
    metadata.insert(SUBMISSION_KEY.into(), sub_id.clone());
    metadata.insert(PROJECT_KEY.into(), project.to_string());
    let mut create = json!({
        "input_file_id": file_id,
        "endpoint": endpoint,
        "completion_window": window,
        "metadata": metadata,
    });
    if let Some(o) = b.output_expires_after {
        create["output_expires_after"] = o;
    }
    let call = CreateCall {
        path: BATCHES_PATH.into(),
        body: Bytes::from(serde_json::to_vec(&create).unwrap_or_default()),
        fwd: Forward::default(),
    };
    let priced = Priced { project, estimate: &est, body_hash, now, request_id };
    let reply = submit_as(app, &s.provider, priced, call, sub_id)
        .await
        .map_err(|e| OpenAiError::from(ApiError::from_submit(e, now)))?;
    answer(reply).map(|(_, r)| r)
}

/// `GET /v1/batches/{id}`.
pub async fn retrieve(
    State(s): State<Surface>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let project = auth::project(&s.app, &headers)?;
    let rec = owned(&s, &project, &id).await?;
    let reply = s.provider.retrieve(&id, &Forward::default()).await?;
    let (v, resp) = answer(reply)?;
    observed(&s, &rec, &v).await;
    Ok(resp)
}

/// `POST /v1/batches/{id}/cancel`.
pub async fn cancel(
    State(s): State<Surface>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let project = auth::project(&s.app, &headers)?;
    let rec = owned(&s, &project, &id).await?;
    let path = format!("{}/cancel", batch_path(&id));
    let reply = s.openai.client.call("cancel", Method::POST, &path, &Forward::default()).await?;
    let (v, resp) = answer(reply)?;
    observed(&s, &rec, &v).await;
    s.app.wake_tracker.notify_one();
    Ok(resp)
}

#[derive(Deserialize)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/batches`: the caller's batches, newest first, each fresh from the upstream.
pub async fn list(
    State(s): State<Surface>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, OpenAiError> {
    let project = auth::project(&s.app, &headers)?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(OpenAiError::invalid("limit", "limit: expected an integer from 1 to 100"));
    }
    let cursor = match &q.after {
        Some(a) => ListCursor::After(a),
        None => ListCursor::Newest,
    };
    let mut recs = s.app.ledger.project_batches(s.name(), &project, cursor, limit + 1).await?;
    let has_more = recs.len() > limit as usize;
    recs.truncate(limit as usize);
    let ids: Vec<String> = recs.iter().filter_map(|r| r.upstream_id.clone()).collect();
    let replies: Vec<_> = stream::iter(ids.clone())
        .map(|id| {
            let provider = s.provider.clone();
            async move { provider.retrieve(&id, &Forward::default()).await }
        })
        .buffered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut data = Vec::with_capacity(replies.len());
    for (rec, reply) in recs.iter().zip(replies) {
        let reply = reply?;
        if reply.status == StatusCode::NOT_FOUND {
            continue;
        }
        let (v, _) = answer(reply)?;
        if v.get("status").and_then(Value::as_str).is_some() {
            observed(&s, rec, &v).await;
        }
        data.push(v);
    }
    Ok(axum::Json(json!({
        "object": "list",
        "data": data,
        "first_id": ids.first(),
        "last_id": ids.last(),
        "has_more": has_more,
    }))
    .into_response())
}
