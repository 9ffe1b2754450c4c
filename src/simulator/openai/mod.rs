//! The OpenAI Files + Batches surface (reference: batch-apis.md section 2,
//! providers-next.md section 2): `POST/GET /v1/files`, `GET/DELETE /v1/files/{id}`,
//! `GET /v1/files/{id}/content`, `POST/GET /v1/batches`, `GET /v1/batches/{id}`,
//! `POST /v1/batches/{id}/cancel`, Bearer auth, OpenAI's error envelope and
//! `x-request-id`, over the shared engine. Wire types come from
//! `crate::providers::openai::wire`.

mod batches;
mod body;
mod error;
mod files;
mod gate;
mod ids;
mod results;
mod store;
mod surface;
mod upload;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

pub use surface::{AppState, Surface, new_surface};

/// OpenAI models the simulator knows (price reference: providers-next.md 2.7, with dated
/// snapshots); any other is a 404 `model_not_found` line in the error file.
pub const MODELS: &[&str] = &[
    "gpt-5",
    "gpt-5-2025-08-07",
    "gpt-5-mini",
    "gpt-5-mini-2025-08-07",
    "gpt-5-nano",
    "gpt-5-nano-2025-08-07",
    "gpt-4.1",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini",
    "gpt-4o-mini-2024-07-18",
    "o3",
    "o3-2025-04-16",
    "o3-mini",
    "o4-mini",
    "o4-mini-2025-04-16",
    "o1",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "omni-moderation-latest",
];

/// The OpenAI routes with their middleware.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/v1/files", post(files::upload).get(files::list))
        .route("/v1/files/{id}", get(files::retrieve).delete(files::delete))
        .route("/v1/files/{id}/content", get(files::content))
        .route("/v1/batches", post(batches::create).get(batches::list))
        .route("/v1/batches/{id}", get(batches::retrieve))
        .route("/v1/batches/{id}/cancel", post(batches::cancel))
        .layer(from_fn_with_state(app.clone(), gate::gate))
        .layer(from_fn_with_state(app.clone(), gate::envelope))
        .with_state(app)
}
