//! The control API, `/_sim/*`: counters, live fault settings, simulated time. Same key
//! as the API (any header a surface accepts), never faulted, not counted as API calls.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::SignedDuration;
use serde::Deserialize;
use serde_json::{Value, json};

use super::engine::faults::Faults;
use super::engine::stats::SimStats;
use super::engine::time::secs;
use super::server::Sim;
use crate::clock::rfc3339_micros;

type SimState = Arc<Sim>;

/// A control-route error: status and message, as `{"error":{"type","message"}}`.
#[derive(Debug)]
pub struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let kind = match self.0 {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            _ => "invalid_request_error",
        };
        let body = json!({"type": "error", "error": {"type": kind, "message": self.1}});
        (self.0, Json(body)).into_response()
    }
}

fn bad(message: String) -> ControlError {
    ControlError(StatusCode::BAD_REQUEST, message)
}

pub fn router(sim: SimState) -> Router {
    Router::new()
        .route("/_sim/stats", get(stats))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/clock", get(clock))
        .route("/_sim/advance", post(advance))
        .layer(from_fn_with_state(sim.clone(), auth))
        .with_state(sim)
}

/// Any header a surface accepts carries the key here too.
async fn auth(State(sim): State<SimState>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let value = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let bearer = value(header::AUTHORIZATION.as_str()).and_then(|v| v.strip_prefix("Bearer "));
    let candidates = [value("x-api-key"), bearer, value("x-goog-api-key")];
    if candidates.into_iter().flatten().any(|k| sim.engine.key_matches(k)) {
        return next.run(req).await;
    }
    sim.engine.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
    ControlError(StatusCode::UNAUTHORIZED, "invalid or missing API key".into()).into_response()
}

async fn small_body(body: Body, limit: usize) -> Result<bytes::Bytes, ControlError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ControlError(StatusCode::PAYLOAD_TOO_LARGE, format!("body exceeds {limit} bytes"))
    })
}

async fn stats(State(sim): State<SimState>) -> Json<SimStats> {
    Json(sim.stats())
}

async fn get_faults(State(sim): State<SimState>) -> Json<Faults> {
    Json(sim.engine.faults.get())
}

async fn put_faults(State(sim): State<SimState>, body: Body) -> Result<Json<Faults>, ControlError> {
    let bytes = small_body(body, 64 * 1024).await?;
    let faults: Faults = serde_json::from_slice(&bytes).map_err(|e| bad(format!("faults: {e}")))?;
    faults.validate().map_err(bad)?;
    sim.engine.faults.set(faults.clone());
    Ok(Json(faults))
}

async fn clock(State(sim): State<SimState>) -> Json<Value> {
    Json(json!({ "now": rfc3339_micros(sim.engine.clock.now()) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: f64,
}

async fn advance(State(sim): State<SimState>, body: Body) -> Result<Json<Value>, ControlError> {
    let bytes = small_body(body, 4096).await?;
    let a: Advance = serde_json::from_slice(&bytes).map_err(|e| bad(format!("advance: {e}")))?;
    if !(a.seconds.is_finite() && a.seconds >= 0.0) {
        return Err(bad("seconds: expected a non-negative number".into()));
    }
    let by: SignedDuration = secs(a.seconds);
    sim.engine.clock.advance(by);
    Ok(Json(json!({ "now": rfc3339_micros(sim.engine.clock.now()) })))
}
