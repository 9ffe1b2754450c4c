//! The gateway: Anthropic-compatible batch endpoints for clients, the service's own admin
//! API, and the background tracker, all sharing one `Arc<App>`.

mod admin;
mod approvals;
mod auth;
mod batches;
mod body;
pub mod error;
mod serve;
mod submit;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::CliError;
use crate::clock::{Clock, SystemClock};
use crate::config::{Settings, load_settings};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::pricing::PriceTable;
use crate::providers::ANTHROPIC;
use crate::providers::anthropic::client::AnthropicClient;

pub use approvals::approve_in;
pub use error::ApiError;

/// Everything a request handler or the tracker needs.
pub struct App {
    pub settings: Settings,
    pub pricing: PriceTable,
    pub ledger: Arc<dyn Ledger>,
    pub upstream: AnthropicClient,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Batches being settled by this process right now (the ledger guarantees
    /// exactly-once; this only avoids downloading the same results twice).
    pub settling: Mutex<HashSet<String>>,
    /// Submissions whose upstream create is in progress in this process; the tracker's
    /// reconciliation leaves them alone.
    pub submitting: Mutex<HashSet<String>>,
    /// Wakes the tracker early (a new batch, or a client saw one end).
    pub wake_tracker: Notify,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// Makes submission ids unique within this process.
    pub seq: std::sync::atomic::AtomicU64,
    /// Crash-test hooks; none armed in production.
    pub failpoints: crate::failpoint::Failpoints,
}

impl App {
    /// Loads the price table, opens the ledger and builds the metrics.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<App>> {
        let pricing = PriceTable::load(&settings.pricing_path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("loading the price table")?;
        let failpoints = crate::failpoint::Failpoints::from_env()?;
        let ledger = crate::ledger::open(&settings.storage_url, settings.durability)
            .await
            .context("opening the ledger")?;
        let projects: Vec<String> = settings.projects.iter().map(|(n, _)| n.clone()).collect();
        let metrics = Arc::new(Metrics::new(
            env!("CARGO_PKG_VERSION"),
            pricing.version(),
            &projects,
            &[ANTHROPIC],
            pricing.models().into_iter().map(|(_, m)| m),
        )?);
        let upstream = AnthropicClient::new(
            &settings.upstream_base_url,
            settings.upstream_key.clone(),
            Duration::from_secs(settings.upstream_timeout_secs),
            settings.upstream_max_attempts,
            metrics.clone(),
        )?;
        Ok(Arc::new(App {
            settings,
            pricing,
            ledger,
            upstream,
            metrics,
            clock,
            settling: Mutex::new(HashSet::new()),
            submitting: Mutex::new(HashSet::new()),
            wake_tracker: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            seq: std::sync::atomic::AtomicU64::new(0),
            failpoints,
        }))
    }
}

/// All routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(batches::router())
        .merge(admin::router())
        .merge(approvals::router())
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
    app.tasks.spawn(crate::notify::run(app.clone()));
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
