//! Every response carries a `request-id`: the upstream's when the answer is relayed from
//! it (the id its support can look up), else one of ours (`req_` + 24 hex digits), so a
//! refusal, a 404 or a gateway error can be quoted back and found in the log. Each
//! request is logged once at its end with that id; the id also rides in the request's
//! extensions for handlers that record it (refusals).

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The id of the request being served, for handlers.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// A fresh id: `req_` and 24 hex digits, unique per process and across restarts.
pub fn new_id() -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = jiff::Timestamp::now().as_nanosecond();
    let h = xxhash_rust::xxh3::xxh3_128(format!("{t}/{n}/{}", std::process::id()).as_bytes());
    format!("req_{:024x}", h & ((1u128 << 96) - 1))
}

/// Middleware: assigns the id, runs the request inside a span carrying it, sets the
/// header (unless the upstream's is already there) and logs the outcome. The path is
/// logged without its query string: a query may carry a key (`?key=` on Gemini's surface).
pub async fn layer(mut req: Request, next: Next) -> Response {
    let id = new_id();
    let method = req.method().clone();
    let path = req.uri().path().chars().take(200).collect::<String>();
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span).await;
    let upstream =
        resp.headers().get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    if upstream.is_none() {
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("request-id", v);
        }
    }
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let upstream_request_id = upstream.as_deref().unwrap_or("");
    if path == "/healthz" || path == "/readyz" || path == "/metrics" {
        tracing::debug!(request_id = %id, %method, %path, status, ms, "request");
    } else {
        tracing::info!(request_id = %id, upstream_request_id, %method, %path, status, ms = format!("{ms:.1}"), "request");
    }
    resp
}

/// The id the middleware gave this request (empty outside the router, e.g. in unit tests).
pub fn of(ext: &axum::http::Extensions) -> String {
    ext.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default()
}
