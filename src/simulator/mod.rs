//! The upstream simulator: a faithful Anthropic Message Batches API on loopback, so tests,
//! the demo, benchmarks and users' CI exercise the real HTTP path without a provider.
//! It shares wire types with the gateway and nothing else; in particular it counts tokens
//! with its own model ([`tokenizer`]), never with the estimator it is used to check.
//!
//! Started in-process with [`spawn`], or as `batchcost simulate` ([`run`]).

mod command;
mod error;
pub mod faults;
mod handlers;
mod ids;
mod ingest;
pub mod params;
mod prompt;
mod results;
mod server;
mod state;
mod stats;
pub mod time;
pub mod tokenizer;
mod usage;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use command::{SimulateArgs, run};
pub use faults::{Faults, Operation};
pub use ingest::{MAX_BODY_BYTES, MAX_REQUESTS};
pub use prompt::{
    DOCUMENT_TOKENS, IMAGE_TOKENS, MESSAGE_OVERHEAD, REQUEST_OVERHEAD, TOOL_OVERHEAD,
};
pub use stats::{FaultStats, SimStats};
pub use time::BaseClock;
pub use usage::MIN_CACHEABLE_TOKENS;

use server::{App, router};

/// Models the simulator knows; any other model gives a `not_found_error` result line.
/// Dated snapshot ids and aliases from the price reference (batch-apis.md 4.2).
pub const DEFAULT_MODELS: &[&str] = &[
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

/// Everything that shapes a simulator run.
#[derive(Clone)]
pub struct SimConfig {
    /// The one key accepted (`x-api-key` or `Authorization: Bearer`).
    pub api_key: String,
    /// Simulated seconds per real second; 0 freezes time (only `/_sim/advance` moves it).
    pub time_scale: f64,
    /// Seeds ids, outcomes, usage and fault draws.
    pub seed: u64,
    /// Requests each batch completes per simulated second.
    pub requests_per_second: f64,
    /// Simulated seconds before a batch's first request completes.
    pub startup_secs: f64,
    /// Simulated seconds from cancel to end; requests completing within it succeed.
    pub cancel_grace_secs: f64,
    /// Share of valid requests that end `errored` with `api_error`.
    pub errored_fraction: f64,
    pub faults: Faults,
    /// Base of `results_url`; default `http://` + the bound address.
    pub public_base_url: Option<String>,
    /// Known model ids.
    pub models: Vec<String>,
    /// The clock simulated time is derived from.
    pub clock: BaseClock,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            api_key: "sim-key".into(),
            time_scale: 1.0,
            seed: 0,
            requests_per_second: 50.0,
            startup_secs: 60.0,
            cancel_grace_secs: 5.0,
            errored_fraction: 0.0,
            faults: Faults::default(),
            public_base_url: None,
            models: DEFAULT_MODELS.iter().map(|m| m.to_string()).collect(),
            clock: BaseClock::default(),
        }
    }
}

/// The key never appears in logs or panics.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("api_key", &"<redacted>")
            .field("time_scale", &self.time_scale)
            .field("seed", &self.seed)
            .field("requests_per_second", &self.requests_per_second)
            .field("startup_secs", &self.startup_secs)
            .field("cancel_grace_secs", &self.cancel_grace_secs)
            .field("errored_fraction", &self.errored_fraction)
            .field("faults", &self.faults)
            .field("public_base_url", &self.public_base_url)
            .field("models", &self.models.len())
            .finish()
    }
}

impl SimConfig {
    /// Checks ranges; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.api_key.trim().is_empty() {
            return Err("api_key: must not be empty".into());
        }
        let non_negative = [
            ("time_scale", self.time_scale),
            ("startup_secs", self.startup_secs),
            ("cancel_grace_secs", self.cancel_grace_secs),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name}: expected a non-negative number, got {v}"));
            }
        }
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return Err(format!(
                "requests_per_second: expected a positive number, got {}",
                self.requests_per_second
            ));
        }
        if !(0.0..=1.0).contains(&self.errored_fraction) {
            return Err(format!(
                "errored_fraction: expected a share between 0 and 1, got {}",
                self.errored_fraction
            ));
        }
        self.faults.validate()
    }
}

/// A running simulator.
pub struct SimHandle {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (or the configured public base): what clients use as `base_url`.
    pub fn base_url(&self) -> String {
        self.app.base_url.clone()
    }

    pub fn stats(&self) -> SimStats {
        let live = self.app.registry().0.live_batches() as u64;
        self.app.stats.snapshot(live)
    }

    pub fn faults(&self) -> Faults {
        self.app.faults.get()
    }

    /// Replaces the fault settings at run time.
    pub fn set_faults(&self, f: Faults) {
        self.app.faults.set(f);
    }

    /// The current simulated time.
    pub fn now(&self) -> Timestamp {
        self.app.clock.now()
    }

    /// Jumps simulated time forward (negative durations are ignored).
    pub fn advance(&self, by: SignedDuration) {
        self.app.clock.advance(by);
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
    let app = Arc::new(App::new(&config, base_url));
    let router = router(app.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%addr, time_scale = config.time_scale, seed = config.seed, "simulator serving");
    Ok(SimHandle { addr, app, stop: Some(stop), task })
}
