//! Anthropic-compatible batch endpoints (contract section 4). Every batch object leaving
//! here has `results_url` rewritten to the gateway, because SDKs follow it verbatim and
//! would otherwise send the client's credentials to the upstream and bypass us.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::error::ApiError;
use super::{App, auth};
use crate::ledger::{BatchRecord, BatchState};
use crate::providers::anthropic::client::{FORWARDED_HEADERS, Forward, UpstreamReply};
use crate::providers::anthropic::wire::ProcessingStatus;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/messages/batches", post(create).get(list))
        .route("/v1/messages/batches/{id}", get(retrieve).delete(delete))
        .route("/v1/messages/batches/{id}/cancel", post(cancel))
        .route("/v1/messages/batches/{id}/results", get(results))
        .route("/v1/messages/count_tokens", post(count_tokens))
}

/// The caller's query string and `anthropic-*` headers, nothing else.
pub fn forward(headers: &HeaderMap, uri: &Uri) -> Forward {
    let mut fwd = Forward { query: uri.query().map(str::to_string), ..Default::default() };
    for name in FORWARDED_HEADERS {
        if let Some(v) = headers.get(name) {
            fwd.headers.insert(name, v.clone());
        }
    }
    fwd
}

/// Points `results_url` at the gateway (null stays null).
pub fn rewrite(app: &App, batch: &mut Value) {
    let id = batch.get("id").and_then(Value::as_str).map(str::to_string);
    if let (Some(id), Some(url)) = (id, batch.get_mut("results_url")) {
        if url.is_string() {
            *url = Value::String(format!(
                "{}/v1/messages/batches/{id}/results",
                app.settings.public_url
            ));
        }
    }
}

/// A JSON answer carrying the upstream's `request-id`.
pub fn json(status: StatusCode, upstream_headers: &HeaderMap, value: &Value) -> Response {
    let mut resp = (status, axum::Json(value)).into_response();
    if let Some(rid) = upstream_headers.get("request-id") {
        resp.headers_mut().insert("request-id", rid.clone());
    }
    resp
}

fn not_found(id: &str) -> ApiError {
    let shown: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(80)
        .collect();
    ApiError::NotFound(format!("batch `{shown}` not found"))
}

/// The caller's own batch, or 404 exactly as if it did not exist.
async fn owned(app: &App, project: &str, id: &str) -> Result<BatchRecord, ApiError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(not_found(id));
    }
    match app.ledger.batch_by_upstream(id).await? {
        Some(rec) if rec.project == project => Ok(rec),
        _ => Err(not_found(id)),
    }
}

/// A 2xx batch object, rewritten; anything else passed through as the upstream's error.
fn batch_reply(app: &App, reply: UpstreamReply) -> Result<(Value, Response), ApiError> {
    if !reply.status.is_success() {
        return Err(ApiError::upstream(reply));
    }
    let mut value: Value = serde_json::from_slice(&reply.body)
        .map_err(|_| ApiError::Internal("upstream sent a batch object that is not JSON".into()))?;
    rewrite(app, &mut value);
    let resp = json(reply.status, &reply.headers, &value);
    Ok((value, resp))
}

/// Settles in the background once a client has seen the batch end.
fn settle_if_ended(app: &Arc<App>, rec: &BatchRecord, batch: &Value) {
    let ended = batch.get("processing_status").and_then(Value::as_str)
        == Some(ProcessingStatus::Ended.as_str());
    if ended && rec.state == BatchState::InFlight {
        crate::settle::spawn(app.clone(), rec.clone());
    }
}

/// Runs the submission as its own task, detached from the connection: a client that
/// disconnects mid-create (or a shutdown closing its connection) must not cancel it between
/// the upstream's acceptance and the ledger write. The task ends recorded or released.
async fn create(State(app): State<Arc<App>>, req: Request) -> Result<Response, ApiError> {
    let task = app.tasks.spawn(super::submit::create(app.clone(), req));
    task.await.map_err(|e| ApiError::Internal(format!("submission task failed: {e}")))?
}

/// Retrieve or cancel: the caller's own batch, relayed with `results_url` rewritten, and
/// settled in the background if the client has just seen it end.
async fn relay(
    app: &Arc<App>,
    id: &str,
    headers: &HeaderMap,
    uri: &Uri,
    op: &str,
    method: Method,
    path: String,
) -> Result<Response, ApiError> {
    let project = auth::project(app, headers)?;
    let rec = owned(app, &project, id).await?;
    let reply = app.upstream.call(op, method, &path, &forward(headers, uri)).await?;
    let (value, resp) = batch_reply(app, reply)?;
    settle_if_ended(app, &rec, &value);
    Ok(resp)
}

async fn retrieve(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let path = format!("/v1/messages/batches/{id}");
    relay(&app, &id, &headers, &uri, "retrieve", Method::GET, path).await
}

async fn cancel(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let path = format!("/v1/messages/batches/{id}/cancel");
    let resp = relay(&app, &id, &headers, &uri, "cancel", Method::POST, path).await?;
    app.wake_tracker.notify_one();
    Ok(resp)
}

async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let project = auth::project(&app, &headers)?;
    let rec = owned(&app, &project, &id).await?;
    if rec.state == BatchState::InFlight {
        // Deleting drops the results upstream: settle first or the cost is lost for good.
        let recorded = crate::settle::settle_now(&app, &rec).await.map_err(|e| {
            ApiError::Conflict(format!("batch cannot be deleted before it is settled: {e}"))
        })?;
        // Not recorded by this call: settled already, or another task is reading the
        // results right now and deleting would cut them off.
        let settled = recorded
            || app.ledger.batch(&rec.sub_id).await?.is_some_and(|r| r.state == BatchState::Settled);
        if !settled {
            return Err(ApiError::Conflict(
                "batch cannot be deleted while it is being settled; retry shortly".into(),
            ));
        }
    }
    let reply = app
        .upstream
        .call(
            "delete",
            Method::DELETE,
            &format!("/v1/messages/batches/{id}"),
            &forward(&headers, &uri),
        )
        .await?;
    if !reply.status.is_success() {
        return Err(ApiError::upstream(reply));
    }
    let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    Ok(json(reply.status, &reply.headers, &value))
}

/// Streams the upstream's JSONL through without holding it.
async fn results(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let project = auth::project(&app, &headers)?;
    owned(&app, &project, &id).await?;
    let fwd = forward(&headers, &uri);
    let path = crate::settle::results_path(&app, &id, &fwd).await?;
    let upstream = app.upstream.results(&path, &fwd).await?;
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

/// `GET /v1/messages/batches`: the caller's batches only, with the upstream's cursors.
async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let project = auth::project(&app, &headers)?;
    let q = ListQuery::parse(uri.query().unwrap_or(""))?;
    let mut fwd = forward(&headers, &uri);
    let (mut before, mut after) = (q.before_id.clone(), q.after_id.clone());
    let mut data = Vec::new();
    let mut has_more = false;
    let mut last_headers = HeaderMap::new();
    let backwards = q.before_id.is_some();
    for _page in 0..20 {
        fwd.query = Some(q.upstream_query(before.as_deref(), after.as_deref()));
        let reply = app.upstream.call("list", Method::GET, "/v1/messages/batches", &fwd).await?;
        if !reply.status.is_success() {
            return Err(ApiError::upstream(reply));
        }
        last_headers = reply.headers.clone();
        let page: RawPage = serde_json::from_slice(&reply.body)
            .map_err(|_| ApiError::Internal("upstream sent an unreadable batch list".into()))?;
        let n = page.data.len();
        // A `before_id` page holds the batches just newer than the cursor, newest first:
        // walk it from the cursor's end so the ones nearest the cursor are kept.
        let items: Vec<&Value> =
            if backwards { page.data.iter().rev().collect() } else { page.data.iter().collect() };
        // One ledger query per page for whose batches these are.
        let ids: Vec<String> = items
            .iter()
            .filter_map(|b| b.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        let owners = app.ledger.upstream_projects(&ids).await?;
        for (i, b) in items.into_iter().enumerate() {
            let id = b.get("id").and_then(Value::as_str).unwrap_or_default();
            let mine = owners.get(id).is_some_and(|p| *p == project);
            if mine {
                // Relayed as the upstream sent it (fields we don't model included).
                let mut v = b.clone();
                rewrite(&app, &mut v);
                data.push(v);
                if data.len() as u32 >= q.limit {
                    has_more = i + 1 < n || page.has_more;
                    break;
                }
            }
        }
        if data.len() as u32 >= q.limit {
            break;
        }
        // Whatever an earlier page said, this one decides whether anything is left.
        has_more = page.has_more;
        if !has_more {
            break;
        }
        if backwards {
            before = page.first_id.clone();
        } else {
            after = page.last_id.clone();
        }
    }
    if backwards {
        data.reverse();
    }
    let id_at = |i: Option<&Value>| i.and_then(|v| v.get("id")).cloned().unwrap_or(Value::Null);
    let body = serde_json::json!({
        "data": data,
        "has_more": has_more,
        "first_id": id_at(data.first()),
        "last_id": id_at(data.last()),
    });
    Ok(json(StatusCode::OK, &last_headers, &body))
}

/// A list page with its batch objects kept as raw JSON.
#[derive(serde::Deserialize)]
struct RawPage {
    data: Vec<Value>,
    has_more: bool,
    first_id: Option<String>,
    last_id: Option<String>,
}

struct ListQuery {
    limit: u32,
    before_id: Option<String>,
    after_id: Option<String>,
    rest: Vec<String>,
}

impl ListQuery {
    fn parse(query: &str) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery { limit: 20, before_id: None, after_id: None, rest: Vec::new() };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "limit" => {
                    q.limit =
                        v.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                            ApiError::InvalidRequest(
                                "limit: expected an integer from 1 to 1000".into(),
                            )
                        })?
                }
                "before_id" => q.before_id = Some(v.to_string()),
                "after_id" => q.after_id = Some(v.to_string()),
                _ => q.rest.push(pair.to_string()),
            }
        }
        Ok(q)
    }

    fn upstream_query(&self, before: Option<&str>, after: Option<&str>) -> String {
        let mut parts = self.rest.clone();
        parts.push(format!("limit={}", self.limit));
        if let Some(b) = before {
            parts.push(format!("before_id={b}"));
        } else if let Some(a) = after {
            parts.push(format!("after_id={a}"));
        }
        parts.join("&")
    }
}

/// Passed through for SDK users who count before they submit; the project key is checked.
async fn count_tokens(State(app): State<Arc<App>>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    auth::project(&app, &parts.headers)?;
    let body = super::body::read_limited(&parts.headers, body, 32 * 1024 * 1024).await?;
    let fwd = forward(&parts.headers, &parts.uri);
    let reply =
        app.upstream.post_json("count_tokens", "/v1/messages/count_tokens", body, &fwd).await?;
    if !reply.status.is_success() {
        return Err(ApiError::upstream(reply));
    }
    let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    Ok(json(reply.status, &reply.headers, &value))
}
