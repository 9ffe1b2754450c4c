//! The two middlewares every Anthropic call passes: `envelope` (request id, error
//! rendering) outside, `gate` (stats, auth, version header, faults) inside.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::ids::request_id;
use super::surface::AppState;
use crate::simulator::engine::Engine;
use crate::simulator::engine::body::drain;
use crate::simulator::engine::faults::Operation;

/// Names the API operation of a call, for stats and fault targeting.
fn operation(method: &Method, path: &str) -> Option<Operation> {
    let rest = path.strip_prefix("/v1/messages/")?;
    if rest == "count_tokens" {
        return (method == Method::POST).then_some(Operation::CountTokens);
    }
    let rest = rest.strip_prefix("batches")?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = rest.split('/').skip(1).collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", []) => Some(Operation::Create),
        ("GET", []) => Some(Operation::List),
        ("GET", [_]) => Some(Operation::Retrieve),
        ("DELETE", [_]) => Some(Operation::Delete),
        ("POST", [_, "cancel"]) => Some(Operation::Cancel),
        ("GET", [_, "results"]) => Some(Operation::Results),
        _ => None,
    }
}

/// Stats, then auth, then the version header, then injected faults; a lost create
/// answer is decided after the handler has created the batch.
pub async fn gate(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let op = operation(req.method(), &path);
    if let Some(op) = op {
        app.count(op);
    }
    match check_key(&app, req.headers()) {
        Ok(AuthKind::XApiKey) => app.stats.auth_x_api_key.fetch_add(1, Ordering::Relaxed),
        Ok(AuthKind::Bearer) => app.stats.auth_bearer.fetch_add(1, Ordering::Relaxed),
        Err(e) => {
            app.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            return reject(req, e).await;
        }
    };
    let version = req.headers().get("anthropic-version");
    if path.starts_with("/v1/") && version.is_none_or(|v| v.is_empty()) {
        return reject(
            req,
            ApiError::InvalidRequest("anthropic-version: header is required".into()),
        )
        .await;
    }
    let Some(op) = op else { return next.run(req).await };
    if let Err(fault) = app.inject(op).await {
        return reject(req, fault.into()).await;
    }
    let resp = next.run(req).await;
    if op == Operation::Create && resp.status().is_success() && app.lose_create() {
        return ApiError::Internal("Internal server error".into()).into_response();
    }
    resp
}

/// Answers before the handler, after reading the body away so a client that is still
/// uploading sees the answer rather than a reset.
async fn reject(req: Request, err: ApiError) -> Response {
    drain(&mut req.into_body().into_data_stream(), 0).await;
    err.into_response()
}

/// Which header carried the accepted key (SDK 1.x sends `x-api-key`, 2.x `Bearer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    XApiKey,
    Bearer,
}

/// `x-api-key: KEY` or `Authorization: Bearer KEY`, compared in constant time.
fn check_key(engine: &Engine, headers: &HeaderMap) -> Result<AuthKind, ApiError> {
    let x_api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if x_api_key.is_none() && bearer.is_none() {
        return Err(ApiError::Authentication("x-api-key header is required".into()));
    }
    let matches = |k: Option<&str>| k.is_some_and(|k| engine.key_matches(k));
    if matches(x_api_key) {
        Ok(AuthKind::XApiKey)
    } else if matches(bearer) {
        Ok(AuthKind::Bearer)
    } else {
        Err(ApiError::Authentication("invalid x-api-key".into()))
    }
}

/// Gives every answer a `request-id` and renders errors (ours and axum's own plain-text
/// rejections) as the Anthropic envelope carrying the same id.
pub async fn envelope(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let rid = request_id(app.seed, app.next_call());
    let mut resp = next.run(req).await;
    if let Some(err) = resp.extensions_mut().remove::<ApiError>() {
        resp = err.render(&rid);
    } else if resp.status().is_client_error() || resp.status().is_server_error() {
        let is_json = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        if !is_json {
            let status = resp.status();
            let text = axum::body::to_bytes(resp.into_body(), 64 * 1024).await.unwrap_or_default();
            let mut message = String::from_utf8_lossy(&text).trim().to_string();
            if message.is_empty() {
                message = status.canonical_reason().unwrap_or("error").to_string();
            }
            resp = ApiError::from_status(status, message).render(&rid);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("request-id", v);
    }
    resp
}

/// Query parameters as a map; a malformed query is axum's 400, rendered by `envelope`.
pub type QueryMap = Query<HashMap<String, String>>;

/// Path id extractor alias, so handlers read naturally.
pub type IdPath = Path<String>;

/// Reads a small body (count_tokens, control routes) up to `limit` bytes.
pub async fn small_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::TooLarge(format!("Request exceeds the maximum allowed size of {limit} bytes"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_from_method_and_path() {
        let op = |m: Method, p: &str| operation(&m, p);
        assert_eq!(op(Method::POST, "/v1/messages/batches"), Some(Operation::Create));
        assert_eq!(op(Method::GET, "/v1/messages/batches"), Some(Operation::List));
        assert_eq!(op(Method::GET, "/v1/messages/batches/msgbatch_1"), Some(Operation::Retrieve));
        assert_eq!(op(Method::DELETE, "/v1/messages/batches/msgbatch_1"), Some(Operation::Delete));
        assert_eq!(
            op(Method::POST, "/v1/messages/batches/msgbatch_1/cancel"),
            Some(Operation::Cancel)
        );
        assert_eq!(
            op(Method::GET, "/v1/messages/batches/msgbatch_1/results"),
            Some(Operation::Results)
        );
        assert_eq!(op(Method::POST, "/v1/messages/count_tokens"), Some(Operation::CountTokens));
        assert_eq!(op(Method::GET, "/_sim/stats"), None);
        assert_eq!(op(Method::GET, "/v1/messages/batchesX"), None);
    }

    fn engine(key: &str) -> Engine {
        let config =
            crate::simulator::config::SimConfig { api_key: key.into(), ..Default::default() };
        Engine::new(config.engine_settings(String::new()))
    }

    #[test]
    fn either_auth_header_is_accepted_and_nothing_else() {
        let (k1, k2, k1x) = (engine("k1"), engine("k2"), engine("k1x"));
        let mut h = HeaderMap::new();
        assert!(
            matches!(check_key(&k1, &h), Err(ApiError::Authentication(m)) if m.contains("required"))
        );
        h.insert("x-api-key", HeaderValue::from_static("k1"));
        assert_eq!(check_key(&k1, &h).ok(), Some(AuthKind::XApiKey));
        assert!(check_key(&k2, &h).is_err());
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k1"));
        assert_eq!(check_key(&k1, &h).ok(), Some(AuthKind::Bearer));
        assert!(check_key(&k1x, &h).is_err());
    }
}
