//! The Anthropic-compatible surface (contract section 4): routes, header forwarding, the
//! error envelope and response rewriting, over provider-neutral submit and settle. Every
//! batch object leaving here has `results_url` rewritten to the gateway, because SDKs
//! follow it verbatim and would otherwise send the client's credentials to the upstream
//! and bypass us.

mod batches;
mod list;
mod surface;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::app::App;
pub use surface::Surface;

/// The routes of one Anthropic upstream, to be mounted at its prefix.
pub fn router(s: Surface) -> Router<Arc<App>> {
    Router::new()
        .route("/v1/messages/batches", post(batches::create).get(list::list))
        .route("/v1/messages/batches/{id}", get(batches::retrieve).delete(batches::delete))
        .route("/v1/messages/batches/{id}/cancel", post(batches::cancel))
        .route("/v1/messages/batches/{id}/results", get(batches::results))
        .route("/v1/messages/count_tokens", post(batches::count_tokens))
        .with_state(s)
}
