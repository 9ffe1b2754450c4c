//! Gemini batch routes: create (priced here from the inline requests or the uploaded
//! file's summary, admitted by the neutral submit with `displayName` = the submission id
//! for orphan matching), get, list, cancel and delete.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde_json::Value;

use super::{GoogleError, Surface, project, query_param};
use crate::estimate::{BodyFormat, Estimate};
use crate::gateway::body;
use crate::gateway::error::ApiError;
use crate::ledger::files::FileRecord;
use crate::ledger::{BatchRecord, BatchState, ListCursor};
use crate::metrics::{RejectReason, UNKNOWN_PROJECT};
use crate::providers::gemini::client::{batch_path, create_path};
use crate::providers::gemini::estimate::{FileSummary, Pricer, Tally};
use crate::providers::gemini::map_operation;
use crate::providers::{BatchPhase, CreateCall, Forward, ResultsRef, UpstreamReply};
use crate::submit::{Priced, new_submission_id, submit_as};

/// How many batch objects are fetched from the upstream at once for one list page.
const FETCH_CONCURRENCY: usize = 8;

/// A JSON answer with the upstream's status.
pub fn json(status: StatusCode, body: &Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The caller's own batch, or 404 exactly as if it did not exist.
pub async fn owned(s: &Surface, project: &str, id: &str) -> Result<BatchRecord, GoogleError> {
    let id = id.strip_prefix("batches/").unwrap_or(id);
    let valid = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(GoogleError::not_found("batch", id));
    }
    match s.app.ledger.batch_by_upstream(s.name(), id).await? {
        Some(rec) if rec.project == project => Ok(rec),
        _ => Err(GoogleError::not_found("batch", &format!("batches/{id}"))),
    }
}

/// Runs the submission as its own task, detached from the connection, so a client that
/// goes away cannot cut it between the upstream's acceptance and the ledger write.
pub async fn create(s: Surface, model: String, req: Request) -> Result<Response, GoogleError> {
    let app = s.app.clone();
    let task = app.tasks.spawn(async move {
        let (parts, raw) = req.into_parts();
        let request_id = crate::gateway::request_id::of(&parts.extensions);
        let project = project(&s, &parts.headers, &parts.uri).inspect_err(|e| {
            s.app.metrics.rejected(UNKNOWN_PROJECT, RejectReason::Unauthenticated);
            crate::gateway::rejections::log(UNKNOWN_PROJECT, &e.0, &request_id);
        })?;
        let result = create_batch(&s, &project, &model, &parts.headers, raw, &request_id).await;
        if let Err(e) = &result {
            crate::gateway::rejections::log(&project, &e.0, &request_id);
            if let Some(r) = e.0.reject_reason() {
                s.app.metrics.rejected(&project, r);
            }
        }
        result
    });
    task.await
        .map_err(|e| GoogleError(ApiError::Internal(format!("submission task failed: {e}"))))?
}

async fn create_batch(
    s: &Surface,
    project: &str,
    model: &str,
    headers: &HeaderMap,
    raw: Body,
    request_id: &str,
) -> Result<Response, GoogleError> {
    let app = &s.app;
    let body = body::read_limited(headers, raw, app.settings.limits.max_body_bytes).await?;
    let now = app.clock.now();
    let model = model.strip_prefix("models/").unwrap_or(model).to_string();
    let mut v: Value = serde_json::from_slice(&body)
        .map_err(|e| GoogleError::invalid(format!("body: not JSON: {e}")))?;
    let batch = v
        .get_mut("batch")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| GoogleError::invalid("batch: required, an object"))?;
    let input = batch
        .get("inputConfig")
        .or_else(|| batch.get("input_config"))
        .ok_or_else(|| GoogleError::invalid("batch.inputConfig: required"))?;
    let file = input.get("fileName").or_else(|| input.get("file_name")).and_then(Value::as_str);
    let provider = s.name().to_string();
    let pricer = Pricer {
        table: &app.pricing,
        provider: s.name(),
        default_model: Some(&model),
        at: now,
        fraction: app.settings.limits.expected_output_fraction,
    };
    let (est, body_hash): (Estimate, String) = match file {
        Some(f) => {
            let rec = owned_file(s, project, f).await?;
            let summary: FileSummary = rec
                .estimate_json
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
                .ok_or_else(|| {
                    GoogleError::invalid(format!(
                        "batch.inputConfig.fileName: `{f}` is not a batch input file"
                    ))
                })?;
            let tally = summary.price(&pricer).map_err(GoogleError::invalid)?;
            let est = tally.estimate(&provider, BodyFormat::Jsonl).map_err(GoogleError::invalid)?;
            (est, format!("file:{}:{model}", rec.file_id))
        }
        None => {
            let requests =
                input.pointer("/requests/requests").and_then(Value::as_array).ok_or_else(|| {
                    GoogleError::invalid(
                        "batch.inputConfig: needs `fileName` or `requests.requests`",
                    )
                })?;
            let mut tally = Tally::default();
            let p = &pricer;
            for (i, item) in requests.iter().enumerate() {
                let key = item
                    .pointer("/metadata/key")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string());
                let req = item.get("request").ok_or_else(|| {
                    GoogleError::invalid(format!(
                        "batch.inputConfig.requests.requests[{i}].request: required"
                    ))
                })?;
                p.add(&mut tally, &key, req).map_err(|e| {
                    GoogleError::invalid(format!(
                        "batch.inputConfig.requests.requests[{i}].request.{e}"
                    ))
                })?;
            }
            let est = tally.estimate(&provider, BodyFormat::Json).map_err(GoogleError::invalid)?;
            (est, format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&body)))
        }
    };
    let sub_id = new_submission_id(app, &body_hash);
    batch.insert("displayName".into(), Value::String(sub_id.clone()));
    batch.remove("display_name");
    let out = Bytes::from(
        serde_json::to_vec(&v).map_err(|e| GoogleError(ApiError::Internal(e.to_string())))?,
    );
    let call = CreateCall { path: create_path(&model), body: out, fwd: Forward::default() };
    let priced = Priced { project, estimate: &est, body_hash, now, request_id };
    let reply = submit_as(app, &s.provider, priced, call, sub_id)
        .await
        .map_err(|e| GoogleError(ApiError::from_submit(e, now)))?;
    passthrough(reply)
}

/// The caller's own uploaded file (`files/{id}` or `{id}`), or 404.
pub async fn owned_file(s: &Surface, project: &str, name: &str) -> Result<FileRecord, GoogleError> {
    let id = name.strip_prefix("files/").unwrap_or(name);
    match s.app.ledger.files().file(s.name(), id).await? {
        Some(f) if f.project == project => Ok(f),
        _ => Err(GoogleError::not_found("file", &format!("files/{id}"))),
    }
}

/// A 2xx JSON answer passed on; anything else as the upstream's error.
fn passthrough(reply: UpstreamReply) -> Result<Response, GoogleError> {
    if !reply.status.is_success() {
        return Err(GoogleError(ApiError::upstream(reply)));
    }
    let value: Value = if reply.body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&reply.body).map_err(|_| {
            GoogleError(ApiError::Internal("upstream sent a body that is not JSON".into()))
        })?
    };
    Ok(json(reply.status, &value))
}

/// Records the output file of an ended batch as the batch's project's, and settles the
/// batch in the background once a client has seen it end.
async fn on_seen(s: &Surface, rec: &BatchRecord, body: &[u8]) -> Result<(), GoogleError> {
    let Ok(st) = s.provider.status(body) else { return Ok(()) };
    if st.phase != BatchPhase::Ended {
        return Ok(());
    }
    if let ResultsRef::Paths(files) = &st.results {
        for f in files {
            let out = FileRecord {
                provider: s.name().to_string(),
                file_id: f.clone(),
                project: rec.project.clone(),
                purpose: "batch_output".into(),
                filename: format!("{f}.jsonl"),
                bytes: 0,
                lines: 0,
                created_at: s.app.clock.now(),
                estimate_json: None,
                batch_id: Some(st.id.clone()),
            };
            s.app.ledger.files().record_file(&out).await?;
        }
    }
    if rec.state == BatchState::InFlight {
        crate::settle::spawn(s.app.clone(), rec.clone());
    }
    Ok(())
}

pub async fn get(
    s: &Surface,
    id: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, GoogleError> {
    let project = project(s, headers, uri)?;
    let rec = owned(s, &project, id).await?;
    let upstream_id = rec.upstream_id.clone().unwrap_or_default();
    let reply = s.provider.retrieve(&upstream_id, &Forward::default()).await?;
    if reply.status.is_success() {
        on_seen(s, &rec, &reply.body).await?;
    }
    passthrough(reply)
}

pub async fn cancel(
    s: &Surface,
    id: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, GoogleError> {
    let project = project(s, headers, uri)?;
    let rec = owned(s, &project, id).await?;
    let path = format!("{}:cancel", batch_path(rec.upstream_id.as_deref().unwrap_or_default()));
    let reply = s.gemini.client.call("cancel", Method::POST, &path, &Forward::default()).await?;
    s.app.wake_tracker.notify_one();
    passthrough(reply)
}

/// Deleting a batch still running is refused (cancel it first); an ended one is settled
/// before it is deleted, because deleting drops its results upstream for good.
pub async fn delete(
    s: &Surface,
    id: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, GoogleError> {
    let project = project(s, headers, uri)?;
    let rec = owned(s, &project, id).await?;
    let upstream_id = rec.upstream_id.clone().unwrap_or_default();
    if rec.state == BatchState::InFlight {
        let reply = s.provider.retrieve(&upstream_id, &Forward::default()).await?;
        if !reply.status.is_success() {
            return Err(GoogleError(ApiError::upstream(reply)));
        }
        let ended = s.provider.status(&reply.body).is_ok_and(|b| b.phase == BatchPhase::Ended);
        if !ended {
            return Err(GoogleError::invalid(format!(
                "batch `batches/{upstream_id}` is still running; cancel it first and delete it once it has ended"
            )));
        }
        let recorded = crate::settle::settle_now(&s.app, &rec).await.map_err(|e| {
            GoogleError(ApiError::Conflict(format!(
                "batch cannot be deleted before it is settled: {e}"
            )))
        })?;
        let settled = recorded
            || s.app
                .ledger
                .batch(&rec.sub_id)
                .await?
                .is_some_and(|r| r.state == BatchState::Settled);
        if !settled {
            return Err(GoogleError(ApiError::Conflict(
                "batch cannot be deleted while it is being settled; retry shortly".into(),
            )));
        }
    }
    let reply = s
        .gemini
        .client
        .call("delete", Method::DELETE, &batch_path(&upstream_id), &Forward::default())
        .await?;
    passthrough(reply)
}

/// `GET /{v}/batches?pageSize=&pageToken=`: the caller's batches from the ledger, newest
/// first, each object fresh from the upstream; the page token is the last batch's id.
pub async fn list(s: &Surface, headers: &HeaderMap, uri: &Uri) -> Result<Response, GoogleError> {
    let project = project(s, headers, uri)?;
    let limit: u32 =
        match query_param(uri, "pageSize") {
            None => 50,
            Some(v) => v.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                GoogleError::invalid("pageSize: expected an integer from 1 to 1000")
            })?,
        };
    let token = query_param(uri, "pageToken").filter(|t| !t.is_empty());
    let cursor = token.map_or(ListCursor::Newest, ListCursor::After);
    let mut recs = s.app.ledger.project_batches(s.name(), &project, cursor, limit + 1).await?;
    let more = recs.len() > limit as usize;
    recs.truncate(limit as usize);
    let ids: Vec<String> = recs.iter().filter_map(|r| r.upstream_id.clone()).collect();
    let replies: Vec<_> = stream::iter(ids.iter().cloned())
        .map(|id| {
            let p = s.provider.clone();
            async move { p.retrieve(&id, &Forward::default()).await }
        })
        .buffered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut ops = Vec::with_capacity(replies.len());
    for reply in replies {
        let reply = reply?;
        if reply.status == StatusCode::NOT_FOUND {
            continue;
        }
        if !reply.status.is_success() {
            return Err(GoogleError(ApiError::upstream(reply)));
        }
        let v: Value = serde_json::from_slice(&reply.body).map_err(|_| {
            GoogleError(ApiError::Internal("upstream sent a batch that is not JSON".into()))
        })?;
        if map_operation(&v).is_ok() {
            ops.push(v);
        }
    }
    let mut body = serde_json::json!({ "operations": ops });
    if more {
        if let Some(last) = ids.last() {
            body["nextPageToken"] = Value::String(last.clone());
        }
    }
    let mut resp = json(StatusCode::OK, &body);
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json; charset=UTF-8"));
    Ok(resp)
}
