//! The Anthropic Message Batches surface: routes, validation of create bodies and
//! `params`, the `message_batch` view, results lines and Anthropic's error envelope, all
//! over the shared engine. Wire types come from `crate::providers::anthropic::wire`.

mod error;
mod gate;
mod handlers;
mod ids;
mod ingest;
pub mod params;
mod prompt;
mod results;
mod state;
mod surface;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

pub use ingest::{MAX_BODY_BYTES, MAX_REQUESTS};
pub use prompt::{
    DOCUMENT_TOKENS, IMAGE_TOKENS, MESSAGE_OVERHEAD, REQUEST_OVERHEAD, TOOL_OVERHEAD,
};
pub use surface::{AppState, Surface};

/// Anthropic models the simulator knows; any other model gives a `not_found_error`
/// result line. Dated snapshot ids and aliases from the price reference (batch-apis.md 4.2).
pub const MODELS: &[&str] = &[
    "claude-fable-5-1",
    "claude-mythos-5-1",
    "claude-fable-5",
    "claude-mythos-5",
    "claude-opus-5-5",
    "claude-opus-5",
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-opus-4-5",
    "claude-opus-4-5-20251101",
    "claude-opus-4-1",
    "claude-opus-4-1-20250805",
    "claude-opus-4-0",
    "claude-opus-4-20250514",
    "claude-3-opus-20240229",
    "claude-3-opus-latest",
    "claude-sonnet-5-5",
    "claude-sonnet-5",
    "claude-sonnet-4-6",
    "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-0",
    "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-20250219",
    "claude-3-7-sonnet-latest",
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
    "claude-3-5-haiku-20241022",
    "claude-3-5-haiku-latest",
    "claude-3-haiku-20240307",
];

/// The Anthropic routes with their middleware; unknown paths answer 404 in Anthropic's
/// envelope (this router carries the simulator's fallback).
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/v1/messages/batches", post(handlers::create).get(handlers::list))
        .route("/v1/messages/batches/{id}", get(handlers::retrieve).delete(handlers::delete))
        .route("/v1/messages/batches/{id}/cancel", post(handlers::cancel))
        .route("/v1/messages/batches/{id}/results", get(handlers::results))
        .route("/v1/messages/count_tokens", post(handlers::count_tokens))
        .fallback(handlers::not_found)
        .layer(from_fn_with_state(app.clone(), gate::gate))
        .layer(from_fn_with_state(app.clone(), gate::envelope))
        .with_state(app)
}
