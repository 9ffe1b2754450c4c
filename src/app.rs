//! The application state every handler and background task shares as `Arc<App>`: the
//! ledger, the providers by upstream name, the price table, metrics and clock. Low in the
//! layout: the gateway, submit, tracker and settle all import it, it imports none of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::Settings;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::pricing::PriceTable;
use crate::providers::Provider;

/// Everything a request handler or the tracker needs.
pub struct App {
    pub settings: Settings,
    pub pricing: PriceTable,
    pub ledger: Arc<dyn Ledger>,
    /// Every configured upstream, by name.
    pub providers: BTreeMap<String, Arc<dyn Provider>>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// This process's name in the ledger's leases: unique per start, so a restarted
    /// process never mistakes its predecessor's claims for its own. Which batches this
    /// replica creates, tracks or settles is ledger state (leases and settling marks), never
    /// held only here.
    pub replica_id: String,
    /// Wakes the tracker early (a new batch, or a client saw one end).
    pub wake_tracker: Notify,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// Makes submission ids unique within this process.
    pub seq: AtomicU64,
    /// Crash-test hooks; none armed in production.
    pub failpoints: crate::failpoint::Failpoints,
    /// Blocking threads that may price a large create while its body arrives: each holds
    /// one until its last byte, so a client trickling many large uploads gets its bodies
    /// read whole (and priced after) once these are taken, instead of holding every
    /// thread of the blocking pool.
    pub early_walks: Arc<Semaphore>,
}

impl App {
    /// Loads the price table, opens the ledger, builds the metrics and one provider per
    /// configured upstream (a kind this build does not serve yet is a startup error).
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<App>> {
        let pricing = PriceTable::load(&settings.pricing_path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("loading the price table")?;
        let failpoints = crate::failpoint::Failpoints::from_env()?;
        let ledger = crate::ledger::open(&settings.storage_url, settings.durability)
            .await
            .context("opening the ledger")?;
        let projects: Vec<String> = settings.projects.iter().map(|(n, _)| n.clone()).collect();
        let names: Vec<&str> = settings.upstreams.iter().map(|u| u.name.as_str()).collect();
        let metrics = Arc::new(Metrics::new(
            env!("CARGO_PKG_VERSION"),
            pricing.version(),
            &projects,
            &names,
            pricing.models().into_iter().map(|(_, m)| m),
        )?);
        let mut providers = BTreeMap::new();
        for up in &settings.upstreams {
            // The rows that price an upstream must be of the wire format it speaks.
            if let Some(k) = pricing.provider_kind(&up.name) {
                if k.as_str() != up.kind {
                    anyhow::bail!(
                        "upstream.{}: kind `{}`, but the price table's [providers.{}] is kind `{}`",
                        up.name,
                        up.kind,
                        up.name,
                        k.as_str()
                    );
                }
            }
            providers.insert(up.name.clone(), crate::providers::build(up, metrics.clone())?);
        }
        Ok(Arc::new(App {
            settings,
            pricing,
            ledger,
            providers,
            metrics,
            clock,
            replica_id: new_replica_id(),
            wake_tracker: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            seq: AtomicU64::new(0),
            failpoints,
            early_walks: Arc::new(Semaphore::new(early_walks())),
        }))
    }

    /// The provider of a ledger record or route, by upstream name.
    pub fn provider(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }
}

/// Two per core: walks are CPU work, and more at once only share the cores.
fn early_walks() -> usize {
    std::thread::available_parallelism().map_or(2, |n| 2 * n.get())
}

/// A replica id unique per process start: host name, process id, start instant.
fn new_replica_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let start = jiff::Timestamp::now().as_microsecond();
    format!("{host}-{}-{:x}", std::process::id(), start & 0xff_ffff_ffff)
}
