//! The upstream simulator: faithful provider batch APIs on loopback, so tests, the demo,
//! benchmarks and users' CI exercise the real HTTP path without a provider.
//!
//! One engine ([`engine`]: simulated time, the batch registry and lifecycle, the seeded
//! usage model, faults, stats, results streaming) and one surface per provider
//! (`anthropic`, `openai`, `gemini` under `/gemini`, each mapping the engine onto its paths, status names, wire types and
//! error envelope). The surfaces share wire types with `crate::providers::NAME::wire` and
//! nothing else from the gateway; tokens are counted with the simulator's own model
//! ([`tokenizer`]), never with the estimator it is used to check.
//!
//! Started in-process with [`spawn`], or as `batchcost simulate`.

mod anthropic;
mod config;
mod control;
pub mod engine;
mod gemini;
mod openai;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use anthropic::params;
pub use anthropic::{
    DOCUMENT_TOKENS, IMAGE_TOKENS, MAX_BODY_BYTES, MAX_REQUESTS, MESSAGE_OVERHEAD,
    REQUEST_OVERHEAD, TOOL_OVERHEAD,
};
pub use config::SimConfig;
pub use engine::faults::{self, Faults, Operation};
pub use engine::stats::{FaultStats, SimStats};
pub use engine::time::{self, BaseClock};
pub use engine::tokenizer;
pub use engine::usage::{MIN_CACHEABLE_TOKENS, OutputShape};

use server::Sim;

/// Anthropic models the simulator knows (the default `SimConfig::models`).
pub const DEFAULT_MODELS: &[&str] = anthropic::MODELS;
/// OpenAI models the simulator knows (the default `SimConfig::openai_models`).
pub const OPENAI_MODELS: &[&str] = openai::MODELS;
/// Gemini models the simulator knows (the default `SimConfig::gemini_models`).
pub const GEMINI_MODELS: &[&str] = gemini::MODELS;

/// A running simulator.
pub struct SimHandle {
    addr: SocketAddr,
    sim: Arc<Sim>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (or the configured public base): what clients use as `base_url`.
    pub fn base_url(&self) -> String {
        self.sim.engine.base_url.clone()
    }

    pub fn stats(&self) -> SimStats {
        self.sim.stats()
    }

    pub fn faults(&self) -> Faults {
        self.sim.engine.faults.get()
    }

    /// Replaces the fault settings at run time.
    pub fn set_faults(&self, f: Faults) {
        self.sim.engine.faults.set(f);
    }

    /// The current simulated time.
    pub fn now(&self) -> Timestamp {
        self.sim.engine.clock.now()
    }

    /// Jumps simulated time forward (negative durations are ignored).
    pub fn advance(&self, by: SignedDuration) {
        self.sim.engine.clock.advance(by);
    }

    /// Stops accepting, lets running calls finish for up to 5 s, then stops.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

/// Serves the simulator on an already bound listener (bind first, so port 0 works and
/// the caller knows the address before anything connects).
pub async fn spawn(config: SimConfig, listener: TcpListener) -> anyhow::Result<SimHandle> {
    config.validate().map_err(anyhow::Error::msg).context("invalid simulator configuration")?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let mut url_addr = addr;
    if url_addr.ip().is_unspecified() {
        url_addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let base_url = match &config.public_base_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("http://{url_addr}"),
    };
    let sim = Arc::new(Sim::new(&config, base_url));
    // Each surface carries its own middleware (auth as its clients send it, its error
    // envelope, its request ids); Anthropic's router carries the fallback.
    let router = control::router(sim.clone())
        .merge(openai::router(sim.openai.clone()))
        .merge(gemini::router(sim.gemini.clone()))
        .merge(anthropic::router(sim.anthropic.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%addr, time_scale = config.time_scale, seed = config.seed, "simulator serving");
    Ok(SimHandle { addr, sim, stop: Some(stop), task })
}
