//! The provider-neutral engine every surface runs on: simulated time, seeded ids and
//! draws, the batch registry and lifecycle, the usage model (prompt cache, output lengths,
//! failures), fault injection, stats, and the streaming helpers results and uploads use.
//! Nothing here knows a provider's paths, status names or wire types: the surfaces
//! (`simulator::anthropic`, `openai`, `gemini`) map the engine's states onto theirs.

pub mod batch;
pub mod body;
pub mod faults;
pub mod files;
pub mod ids;
pub mod order;
pub mod registry;
pub mod stats;
pub mod surface;
pub mod time;
pub mod tokenizer;
pub mod usage;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use faults::{Fault, FaultBox, Operation};
use registry::Lifecycle;
use stats::Stats;
use time::SimClock;
use usage::OutputShape;

/// What every surface shares: one clock, one fault sequence, one set of counters.
#[derive(Debug)]
pub struct Engine {
    pub seed: u64,
    /// The one key accepted, whichever header carries it.
    api_key: String,
    /// `http://ADDR` or the configured public base, without a trailing slash.
    pub base_url: String,
    pub clock: SimClock,
    pub faults: FaultBox,
    pub stats: Arc<Stats>,
    pub lifecycle: Lifecycle,
    pub output: OutputShape,
    /// Report request counters as requests complete (OpenAI `request_counts`, Gemini
    /// `batchStats`) rather than all at the end.
    pub progressive_counts: bool,
    /// Simulated seconds an OpenAI batch spends `validating`, and `finalizing`.
    pub validating_secs: f64,
    pub finalizing_secs: f64,
    calls: AtomicU64,
}

/// The settings [`Engine::new`] takes (from `SimConfig`).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub seed: u64,
    pub api_key: String,
    pub base_url: String,
    pub clock: time::BaseClock,
    pub time_scale: f64,
    pub faults: faults::Faults,
    pub lifecycle: Lifecycle,
    pub output: OutputShape,
    pub progressive_counts: bool,
    pub validating_secs: f64,
    pub finalizing_secs: f64,
}

impl Engine {
    pub fn new(s: EngineSettings) -> Self {
        Engine {
            seed: s.seed,
            api_key: s.api_key,
            base_url: s.base_url,
            clock: SimClock::new(s.clock, s.time_scale),
            faults: FaultBox::new(s.seed, s.faults),
            stats: Arc::new(Stats::default()),
            lifecycle: s.lifecycle,
            output: s.output,
            progressive_counts: s.progressive_counts,
            validating_secs: s.validating_secs,
            finalizing_secs: s.finalizing_secs,
            calls: AtomicU64::new(0),
        }
    }

    /// A fresh counter value for request ids (one sequence for all surfaces).
    pub fn next_call(&self) -> u64 {
        self.calls.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether `candidate` is the key, compared in constant time.
    pub fn key_matches(&self, candidate: &str) -> bool {
        constant_time_eq(candidate.trim().as_bytes(), self.api_key.as_bytes())
    }

    /// Counts the call, then applies the configured slow-down and draws an injected
    /// error; the surface renders the error in its own envelope.
    pub async fn inject(&self, op: Operation) -> Result<(), Fault> {
        let decision = self.faults.decide(op);
        if let Some(delay) = decision.delay {
            self.stats.faults.slow.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
        match decision.error {
            None => Ok(()),
            Some(f) => {
                let counter = match f {
                    Fault::Overloaded { .. } => &self.stats.faults.http_529,
                    Fault::RateLimited { .. } => &self.stats.faults.http_429,
                    Fault::Internal => &self.stats.faults.http_500,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Err(f)
            }
        }
    }

    /// Counts one API call of `op` (and a create attempt).
    pub fn count(&self, op: Operation) {
        self.stats.count(op);
        if op == Operation::Create {
            self.stats.create_attempts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether this accepted create loses its answer (counted when it does).
    pub fn lose_create(&self) -> bool {
        let lost = self.faults.lose_create();
        if lost {
            self.stats.faults.create_lost.fetch_add(1, Ordering::Relaxed);
        }
        lost
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
