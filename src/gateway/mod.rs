//! The gateway: Anthropic-compatible batch endpoints for clients, the service's own admin
//! API, and the background tracker, all sharing one `Arc<App>`.

mod admin;
pub mod auth;
pub mod body;
pub mod error;
mod serve;
pub mod surfaces;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;

use crate::clock::SystemClock;
use crate::config::load_settings;
use crate::error::CliError;
use crate::providers::{ANTHROPIC, ProviderKind};

pub use crate::app::App;
pub use error::ApiError;

/// The routes of every configured upstream: each under `/NAME`, and the default Anthropic
/// upstream (the one named `anthropic`, else the first of that kind) also at the root.
fn surfaces(app: &Arc<App>) -> Router<Arc<App>> {
    let mut router = Router::new();
    let root = app
        .providers
        .get(ANTHROPIC)
        .filter(|p| p.kind() == ProviderKind::Anthropic)
        .or_else(|| app.providers.values().find(|p| p.kind() == ProviderKind::Anthropic));
    for (name, p) in &app.providers {
        if p.kind() != ProviderKind::Anthropic {
            continue;
        }
        let prefix = format!("/{name}");
        if let Some(s) = surfaces::anthropic::Surface::new(app.clone(), p.clone(), prefix.clone()) {
            router = router.nest(&prefix, surfaces::anthropic::router(s));
        }
    }
    if let Some(p) = root {
        if let Some(s) = surfaces::anthropic::Surface::new(app.clone(), p.clone(), String::new()) {
            router = router.merge(surfaces::anthropic::router(s));
        }
    }
    router.merge(gemini_surfaces(app))
}

/// Every upstream of kind `gemini` under `/NAME` only: google-genai 3.x calls `/v1/batches`
/// and `/v1/files` like OpenAI, so Gemini has no root surface.
fn gemini_surfaces(app: &Arc<App>) -> Router<Arc<App>> {
    let mut router = Router::new();
    for p in app.providers.values().filter(|p| p.kind() == ProviderKind::Gemini) {
        if let Some(s) = surfaces::gemini::Surface::new(app.clone(), p.clone()) {
            router = router.nest(&format!("/{}", p.name()), surfaces::gemini::router(s));
        }
    }
    router
}

/// All routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(surfaces(&app))
        .merge(admin::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        // Bodies are read as streams with our own limit (413 before buffering too much)
        // and our own idle and total timeouts (408 for a client that stalls).
        .layer(axum::middleware::from_fn_with_state(app.clone(), body::guard))
        .layer(axum::middleware::from_fn(error::envelope))
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

/// A gateway serving on a bound listener, with its tracker running.
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting at once; lets requests in progress and background work (the
    /// tracker's current poll, settlements, submissions whose client went away) finish
    /// within `[server] shutdown_grace_secs`, then returns. A submission cut off by the
    /// deadline keeps its hold as `submitting`: the next start reconciles it against the
    /// upstream, which is the only safe choice when the create may have been accepted.
    pub async fn shutdown(self) {
        let grace = Duration::from_secs(self.app.settings.server.shutdown_grace_secs);
        let deadline = tokio::time::Instant::now() + grace;
        self.app.shutdown.cancel();
        let _ = self.server.await;
        self.app.tasks.close();
        if tokio::time::timeout_at(deadline, self.app.tasks.wait()).await.is_err() {
            let left = self.app.submitting.lock().unwrap_or_else(|e| e.into_inner()).len();
            tracing::warn!(
                submissions_in_progress = left,
                "shutdown grace ran out; unfinished submissions are reconciled on the next start"
            );
        }
    }
}

/// Serves `app` on an already-bound listener (bind first, then serve: tests use port 0).
pub async fn start(app: Arc<App>, listener: TcpListener) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let opts = serve::ServeOptions {
        header_read_timeout: Duration::from_secs(app.settings.server.header_read_timeout_secs),
        grace: Duration::from_secs(app.settings.server.shutdown_grace_secs),
    };
    let server =
        tokio::spawn(serve::serve(listener, router(app.clone()), opts, app.shutdown.clone()));
    let tracker_app = app.clone();
    app.tasks.spawn(crate::tracker::run(tracker_app));
    Ok(Running { addr, app, server })
}

/// `batchcost serve` arguments.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file.
    #[arg(long, default_value = "batchcost.toml")]
    pub config: PathBuf,
}

/// Runs the gateway until Ctrl-C or SIGTERM.
pub async fn run_serve(args: ServeArgs) -> Result<(), CliError> {
    crate::telemetry::init();
    let mut settings = load_settings(&args.config).map_err(|e| CliError::Usage(e.to_string()))?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    if settings.public_url.is_empty() {
        settings.public_url =
            format!("http://{}", listener.local_addr().context("reading the bound address")?);
    }
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let running = start(app, listener).await?;
    println!("listening on http://{}", running.addr);
    tracing::info!(addr = %running.addr, "gateway listening");
    crate::shutdown::signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
