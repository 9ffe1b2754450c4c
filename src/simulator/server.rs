//! HTTP surface: the Anthropic batch routes, the `/_sim/*` control routes, and the two
//! middlewares every call passes: `envelope` (request id, error rendering) outside,
//! `gate` (stats, auth, version header, faults) inside.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::error::ApiError;
use super::faults::{FaultBox, Operation};
use super::ids::request_id;
use super::ingest::drain;
use super::state::{Lifecycle, Registry};
use super::stats::Stats;
use super::time::SimClock;
use super::{SimConfig, handlers};

/// Everything the handlers share.
#[derive(Debug)]
pub struct App {
    pub seed: u64,
    api_key: String,
    pub base_url: String,
    pub clock: SimClock,
    registry: Mutex<Registry>,
    pub faults: FaultBox,
    pub stats: Arc<Stats>,
    pub models: Arc<HashSet<String>>,
    requests: AtomicU64,
}

pub type AppState = Arc<App>;

impl App {
    pub fn new(config: &SimConfig, base_url: String) -> Self {
        let lifecycle = Lifecycle {
            seed: config.seed,
            startup_secs: config.startup_secs,
            requests_per_second: config.requests_per_second,
            cancel_grace_secs: config.cancel_grace_secs,
            errored_fraction: config.errored_fraction,
        };
        App {
            seed: config.seed,
            api_key: config.api_key.clone(),
            base_url,
            clock: SimClock::new(config.clock.clone(), config.time_scale),
            registry: Mutex::new(Registry::new(lifecycle)),
            faults: FaultBox::new(config.seed, config.faults.clone()),
            stats: Arc::new(Stats::default()),
            models: Arc::new(config.models.iter().cloned().collect()),
            requests: AtomicU64::new(0),
        }
    }

    /// The registry, brought up to the current simulated time.
    pub fn registry(&self) -> (MutexGuard<'_, Registry>, jiff::Timestamp) {
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        reg.advance(now);
        (reg, now)
    }
}

/// All routes with their middleware.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/v1/messages/batches", post(handlers::create).get(handlers::list))
        .route("/v1/messages/batches/{id}", get(handlers::retrieve).delete(handlers::delete))
        .route("/v1/messages/batches/{id}/cancel", post(handlers::cancel))
        .route("/v1/messages/batches/{id}/results", get(handlers::results))
        .route("/v1/messages/count_tokens", post(handlers::count_tokens))
        .route("/_sim/stats", get(handlers::stats))
        .route("/_sim/faults", get(handlers::get_faults).put(handlers::put_faults))
        .route("/_sim/clock", get(handlers::clock))
        .route("/_sim/advance", post(handlers::advance))
        .fallback(handlers::not_found)
        .layer(from_fn_with_state(app.clone(), gate))
        .layer(from_fn_with_state(app.clone(), envelope))
        .with_state(app)
}

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
async fn gate(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let op = operation(req.method(), &path);
    if let Some(op) = op {
        app.stats.count(op);
        if op == Operation::Create {
            app.stats.create_attempts.fetch_add(1, Ordering::Relaxed);
        }
    }
    match check_key(&app.api_key, req.headers()) {
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
    let decision = app.faults.decide(op);
    if let Some(delay) = decision.delay {
        app.stats.faults.slow.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(delay).await;
    }
    if let Some(err) = decision.error {
        let counter = match err {
            ApiError::Overloaded { .. } => &app.stats.faults.http_529,
            ApiError::RateLimited { .. } => &app.stats.faults.http_429,
            _ => &app.stats.faults.http_500,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        return reject(req, err).await;
    }
    let resp = next.run(req).await;
    if op == Operation::Create && resp.status().is_success() && app.faults.lose_create() {
        app.stats.faults.create_lost.fetch_add(1, Ordering::Relaxed);
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
fn check_key(expected: &str, headers: &HeaderMap) -> Result<AuthKind, ApiError> {
    let x_api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if x_api_key.is_none() && bearer.is_none() {
        return Err(ApiError::Authentication("x-api-key header is required".into()));
    }
    let matches = |k: Option<&str>| {
        k.is_some_and(|k| constant_time_eq(k.trim().as_bytes(), expected.as_bytes()))
    };
    if matches(x_api_key) {
        Ok(AuthKind::XApiKey)
    } else if matches(bearer) {
        Ok(AuthKind::Bearer)
    } else {
        Err(ApiError::Authentication("invalid x-api-key".into()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Gives every answer a `request-id` and renders errors (ours and axum's own plain-text
/// rejections) as the Anthropic envelope carrying the same id.
async fn envelope(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let rid = request_id(app.seed, app.requests.fetch_add(1, Ordering::Relaxed));
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

    #[test]
    fn either_auth_header_is_accepted_and_nothing_else() {
        let mut h = HeaderMap::new();
        assert!(
            matches!(check_key("k1", &h), Err(ApiError::Authentication(m)) if m.contains("required"))
        );
        h.insert("x-api-key", HeaderValue::from_static("k1"));
        assert_eq!(check_key("k1", &h).ok(), Some(AuthKind::XApiKey));
        assert!(check_key("k2", &h).is_err());
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k1"));
        assert_eq!(check_key("k1", &h).ok(), Some(AuthKind::Bearer));
        assert!(check_key("k1x", &h).is_err());
    }
}
