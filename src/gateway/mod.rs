//! The gateway: Anthropic-compatible batch endpoints for clients, the service's own admin
//! API, and the background tracker, all sharing one `Arc<App>`.

mod admin;
mod approvals;
pub mod auth;
pub mod body;
pub mod body_early;
pub mod error;
mod estimate_kinds;
mod listing;
pub(crate) mod rejections;
pub mod request_id;
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
use crate::error::CliError;
use crate::providers::{ANTHROPIC, OPENAI, ProviderKind};

pub use crate::app::App;
pub use crate::approvals::approve_in;
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
    router.merge(openai_surfaces(app)).merge(gemini_surfaces(app))
}

/// Every upstream of kind `openai` under `/NAME`, and the default one (named `openai`,
/// else the first of that kind) also at the root, where the SDK's `base_url` is `.../v1`.
fn openai_surfaces(app: &Arc<App>) -> Router<Arc<App>> {
    let mut router = Router::new();
    let openai: Vec<_> =
        app.providers.values().filter(|p| p.kind() == ProviderKind::OpenAi).collect();
    for p in &openai {
        if let Some(s) = surfaces::openai::Surface::new(app.clone(), (*p).clone()) {
            router = router.nest(&format!("/{}", p.name()), surfaces::openai::router(s));
        }
    }
    let root = openai.iter().find(|p| p.name() == OPENAI).or(openai.first());
    if let Some(s) = root.and_then(|p| surfaces::openai::Surface::new(app.clone(), (*p).clone())) {
        router = router.merge(surfaces::openai::router(s));
    }
    router
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
        .merge(approvals::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        // Bodies are read as streams with our own limit (413 before buffering too much)
        // and our own idle and total timeouts (408 for a client that stalls).
        .layer(axum::middleware::from_fn_with_state(app.clone(), body::guard))
        .layer(axum::middleware::from_fn(error::envelope))
        // Outermost: every answer, envelope or not, gets its request-id.
        .layer(axum::middleware::from_fn(request_id::layer))
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
            tracing::warn!(
                "shutdown grace ran out; unfinished submissions are reconciled once their \
                 leases expire"
            );
            return;
        }
        // Everything finished: hand this replica's batches to the others at once.
        crate::replica::drop_all(&self.app).await;
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
    app.tasks.spawn(crate::replica::heartbeat(app.clone()));
    app.tasks.spawn(crate::notify::run(app.clone()));
    Ok(Running { addr, app, server })
}

/// `batchcost serve` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = SERVE_HELP)]
pub struct ServeArgs {
    /// Configuration file (start from examples/batchcost.toml: every key, with comments).
    #[arg(long, default_value = "batchcost.toml")]
    pub config: PathBuf,
    /// Log format on stderr: text (colour only on a terminal) or json (one object per
    /// line). Default: the config's `[log] format`, else text.
    #[arg(long, value_enum)]
    pub log_format: Option<crate::config::LogFormat>,
    /// Listen on this address instead of the config's `listen` (`127.0.0.1:0`: any free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

const SERVE_HELP: &str = "\
Example: examples/batchcost.toml. With it, set these environment variables first:
  ANTHROPIC_API_KEY       the provider key  (upstream.anthropic.api_key_env)
  SEARCH_KEY, SUPPORT_KEY the projects' client keys  (projects[].api_key_envs)
  SUPPORT_KEY_NEXT        optional rotation slot  (projects[].optional_api_key_envs)
  BATCHCOST_ADMIN_TOKEN   guards /api/* and /metrics  (admin.token_env)
  RUST_LOG                log filter (default info)
The file names every variable it reads; a missing one is reported with all the others.
Against the local simulator: see examples/local-stack.toml.

Prints `listening on http://ADDR` on stdout once bound. Stops on Ctrl-C or SIGTERM.

Exit status: 0 stopped cleanly, 2 bad usage or config (the message names the file, the key
and what was expected), 1 runtime failure (cannot bind, ledger or price table unusable).";

/// Runs the gateway until Ctrl-C or SIGTERM.
pub async fn run_serve(args: ServeArgs) -> Result<(), CliError> {
    let usage = |e: crate::config::ConfigError| CliError::Usage(e.to_string());
    let config = crate::config::Config::load(&args.config).map_err(usage)?;
    crate::telemetry::init_with(args.log_format.unwrap_or(config.log.format));
    let mut settings = config.resolve(&args.config, &|k| std::env::var(k).ok()).map_err(usage)?;
    if let Some(addr) = args.listen {
        settings.listen = addr;
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    if settings.public_url.is_empty() {
        settings.public_url =
            format!("http://{}", listener.local_addr().context("reading the bound address")?);
    }
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let running = start(app, listener).await?;
    let stop = crate::shutdown::signal();
    println!("listening on http://{}", running.addr);
    crate::telemetry::log_startup(
        &running.app.settings,
        running.app.pricing.version(),
        &running.addr.to_string(),
    );
    stop.await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
