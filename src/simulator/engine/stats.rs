//! Counters a test reads to check what a client really did against the simulator (how
//! many creates reached it, how many faults it injected), via [`super::SimHandle::stats`]
//! or `GET /_sim/stats`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::faults::Operation;

/// Live counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub create_attempts: AtomicU64,
    pub creates_accepted: AtomicU64,
    pub auth_failures: AtomicU64,
    pub auth_x_api_key: AtomicU64,
    pub auth_bearer: AtomicU64,
    pub result_lines: AtomicU64,
    by_op: [AtomicU64; 9],
    pub faults: FaultCounters,
    /// Retrieve calls per batch id: how many poll streams a batch had (one per gateway,
    /// however many replicas share its ledger). A hash map, counted in place: an ordered
    /// map keyed by a fresh `String` per call made every retrieve cost a dozen string
    /// compares and an allocation with 100,000 batches held.
    retrieves: std::sync::Mutex<HashMap<String, u64>>,
}

/// Faults injected so far, by kind.
#[derive(Debug, Default)]
pub struct FaultCounters {
    pub http_500: AtomicU64,
    pub http_529: AtomicU64,
    pub http_429: AtomicU64,
    pub slow: AtomicU64,
    pub cut_results: AtomicU64,
    pub create_lost: AtomicU64,
}

const OPS: [Operation; 9] = [
    Operation::Create,
    Operation::Retrieve,
    Operation::List,
    Operation::Cancel,
    Operation::Delete,
    Operation::Results,
    Operation::CountTokens,
    Operation::Upload,
    Operation::Files,
];

impl Stats {
    pub fn count(&self, op: Operation) {
        if let Some(i) = OPS.iter().position(|o| *o == op) {
            self.by_op[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn retrieved(&self, id: &str) {
        let mut m = self.retrieves.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(id) {
            Some(n) => *n += 1,
            None => {
                m.insert(id.to_string(), 1);
            }
        }
    }

    pub fn snapshot(&self, live_batches: u64) -> SimStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SimStats {
            create_attempts: get(&self.create_attempts),
            creates_accepted: get(&self.creates_accepted),
            auth_failures: get(&self.auth_failures),
            auth_x_api_key: get(&self.auth_x_api_key),
            auth_bearer: get(&self.auth_bearer),
            result_lines_streamed: get(&self.result_lines),
            live_batches,
            requests: OPS
                .iter()
                .zip(&self.by_op)
                .map(|(op, n)| (op.as_str().to_string(), get(n)))
                .collect(),
            faults: FaultStats {
                http_500: get(&self.faults.http_500),
                http_529: get(&self.faults.http_529),
                http_429: get(&self.faults.http_429),
                slow: get(&self.faults.slow),
                cut_results: get(&self.faults.cut_results),
                create_lost: get(&self.faults.create_lost),
            },
            retrieves_by_batch: self
                .retrieves
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(id, n)| (id.clone(), *n))
                .collect(),
        }
    }
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Every create call received, whatever its fate (auth failure, fault, 400).
    pub create_attempts: u64,
    /// Batches actually created (including those whose answer was lost on purpose).
    pub creates_accepted: u64,
    pub auth_failures: u64,
    /// Calls authenticated by `x-api-key`.
    pub auth_x_api_key: u64,
    /// Calls authenticated by `Authorization: Bearer`.
    pub auth_bearer: u64,
    /// Complete result lines sent.
    pub result_lines_streamed: u64,
    /// Batches currently stored (not deleted), all surfaces.
    pub live_batches: u64,
    /// API calls received per operation (`create`, `retrieve`, `list`, `cancel`, `delete`,
    /// `results`, `count_tokens`, `upload`, `files`), all surfaces.
    pub requests: BTreeMap<String, u64>,
    pub faults: FaultStats,
    /// Retrieve calls per batch id.
    #[serde(default)]
    pub retrieves_by_batch: BTreeMap<String, u64>,
}

/// Faults injected, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStats {
    pub http_500: u64,
    pub http_529: u64,
    pub http_429: u64,
    pub slow: u64,
    pub cut_results: u64,
    pub create_lost: u64,
}
