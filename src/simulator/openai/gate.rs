//! The two middlewares every OpenAI call passes: `envelope` (x-request-id, error
//! rendering) outside, `gate` (stats, Bearer auth, faults) inside.

use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::ids::request_id;
use super::surface::AppState;
use crate::simulator::engine::body::drain;
use crate::simulator::engine::faults::Operation;

/// Names the API operation of a call, for stats and fault targeting.
pub fn operation(method: &Method, path: &str) -> Option<Operation> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["v1", "files"]) => Some(Operation::Upload),
        ("GET", ["v1", "files"]) | ("GET" | "DELETE", ["v1", "files", _]) => Some(Operation::Files),
        ("GET", ["v1", "files", _, "content"]) => Some(Operation::Results),
        ("POST", ["v1", "batches"]) => Some(Operation::Create),
        ("GET", ["v1", "batches"]) => Some(Operation::List),
        ("GET", ["v1", "batches", _]) => Some(Operation::Retrieve),
        ("POST", ["v1", "batches", _, "cancel"]) => Some(Operation::Cancel),
        _ => None,
    }
}

/// Stats, then auth, then injected faults; a lost create answer is decided after the
/// handler has created the batch.
pub async fn gate(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let op = operation(req.method(), req.uri().path());
    if let Some(op) = op {
        app.count(op);
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(k) if app.key_matches(k) => {
            app.stats.auth_bearer.fetch_add(1, Ordering::Relaxed);
        }
        other => {
            app.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            let err = match other {
                None => ApiError::Authentication {
                    message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".into(),
                    code: None,
                },
                Some(_) => ApiError::Authentication {
                    message: "Incorrect API key provided.".into(),
                    code: Some("invalid_api_key"),
                },
            };
            return reject(req, err).await;
        }
    }
    let Some(op) = op else { return next.run(req).await };
    if let Err(fault) = app.inject(op).await {
        return reject(req, fault.into()).await;
    }
    let resp = next.run(req).await;
    if op == Operation::Create && resp.status().is_success() && app.lose_create() {
        return ApiError::Internal.into_response();
    }
    resp
}

/// Answers before the handler, after reading the body away so a client that is still
/// uploading sees the answer rather than a reset.
async fn reject(req: Request, err: ApiError) -> Response {
    drain(&mut req.into_body().into_data_stream(), 0).await;
    err.into_response()
}

/// Gives every answer an `x-request-id` and renders errors (ours and axum's own
/// plain-text rejections) as OpenAI's envelope.
pub async fn envelope(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let rid = request_id(app.seed, app.next_call());
    let mut resp = next.run(req).await;
    if let Some(err) = resp.extensions_mut().remove::<ApiError>() {
        resp = err.render();
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
            resp = ApiError::from_status(status, message).render();
        }
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_from_method_and_path() {
        let op = |m: Method, p: &str| operation(&m, p);
        assert_eq!(op(Method::POST, "/v1/files"), Some(Operation::Upload));
        assert_eq!(op(Method::GET, "/v1/files/file-1"), Some(Operation::Files));
        assert_eq!(op(Method::GET, "/v1/files/file-1/content"), Some(Operation::Results));
        assert_eq!(op(Method::POST, "/v1/batches"), Some(Operation::Create));
        assert_eq!(op(Method::GET, "/v1/batches"), Some(Operation::List));
        assert_eq!(op(Method::POST, "/v1/batches/batch_1/cancel"), Some(Operation::Cancel));
        assert_eq!(op(Method::PUT, "/v1/batches"), None);
    }
}
