//! The OpenAI-compatible surface (contract section 4): Files and Batches as the official
//! `openai` SDKs call them, at `/v1` (the root OpenAI upstream) and `/NAME/v1` (every
//! upstream of kind `openai`), over provider-neutral submit and settle.
//!
//! Ownership comes from the ledger: a file or batch belongs to the project that made it,
//! and anything else is a 404 exactly as if it did not exist. Lists come from the ledger
//! too (the upstream's list mixes every project's objects). The client's key never
//! reaches the upstream and the upstream's key never reaches the client.

mod batches;
mod error;
mod files;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::app::App;
use crate::providers::Provider;
use crate::providers::openai::provider::OpenAiProvider;
pub use error::OpenAiError;

/// One OpenAI-compatible upstream served at a path prefix.
#[derive(Clone)]
pub struct Surface {
    pub app: Arc<App>,
    pub provider: Arc<dyn Provider>,
    pub openai: Arc<OpenAiProvider>,
}

impl Surface {
    /// The surface of `provider`, if it speaks OpenAI's format.
    pub fn new(app: Arc<App>, provider: Arc<dyn Provider>) -> Option<Surface> {
        let openai = provider.clone().into_any().downcast::<OpenAiProvider>().ok()?;
        Some(Surface { app, provider, openai })
    }

    pub fn name(&self) -> &str {
        self.provider.name()
    }
}

/// The routes of one OpenAI upstream, to be mounted at its prefix (they start at `/v1`).
pub fn router(s: Surface) -> Router<Arc<App>> {
    // Multipart framing around the largest file this upstream accepts.
    let upload_limit = s.openai.client.compat.limits.max_bytes as usize + (1 << 20);
    Router::new()
        .route(
            "/v1/files",
            post(files::upload).layer(DefaultBodyLimit::max(upload_limit)).get(files::list),
        )
        .route("/v1/files/{id}", get(files::retrieve).delete(files::delete))
        .route("/v1/files/{id}/content", get(files::content))
        .route("/v1/batches", post(batches::create).get(batches::list))
        .route("/v1/batches/{id}", get(batches::retrieve))
        .route("/v1/batches/{id}/cancel", post(batches::cancel))
        .with_state(s)
}
