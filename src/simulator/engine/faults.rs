//! Fault injection: what a flaky upstream does to a client, at configured rates, from a
//! seeded sequence so a failing test replays the same way. Faults never touch batch state,
//! except the documented "accepted but answer lost" create.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::Key;

/// Fault rates (each in `[0, 1]`) and their parameters; all zero by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of API calls answered with an internal error (Anthropic `500 api_error`,
    /// OpenAI `500 server_error`, Google `500 INTERNAL`).
    pub http_500_rate: f64,
    /// Share answered as overloaded, with `retry-after` (Anthropic `529
    /// overloaded_error`, OpenAI and Google `503`).
    pub http_529_rate: f64,
    /// Share answered `429` rate limited (Google `RESOURCE_EXHAUSTED`), with `retry-after`.
    pub http_429_rate: f64,
    /// Value of the `retry-after` header on 429 and 529, in seconds.
    pub retry_after_secs: u64,
    /// Share of calls delayed by `slow_ms` before being answered.
    pub slow_rate: f64,
    /// Delay of a slow call, in real milliseconds.
    pub slow_ms: u64,
    /// Share of results downloads cut off in the middle of a line.
    pub cut_results_rate: f64,
    /// Share of creates that succeed upstream but whose answer is replaced by a 500: the
    /// batch exists and is listed, the client never learned its id.
    pub create_lost_rate: f64,
    /// Operations the faults apply to; empty means all of them.
    pub operations: Vec<Operation>,
}

impl Faults {
    /// Checks every rate is a probability and the error rates can all happen.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("http_500_rate", self.http_500_rate),
            ("http_529_rate", self.http_529_rate),
            ("http_429_rate", self.http_429_rate),
            ("slow_rate", self.slow_rate),
            ("cut_results_rate", self.cut_results_rate),
            ("create_lost_rate", self.create_lost_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("faults.{name}: expected a rate between 0 and 1, got {rate}"));
            }
        }
        let errors = self.http_500_rate + self.http_529_rate + self.http_429_rate;
        if errors > 1.0 + 1e-9 {
            return Err(format!(
                "faults: http_500_rate + http_529_rate + http_429_rate must not exceed 1, got {errors}"
            ));
        }
        Ok(())
    }

    fn applies_to(&self, op: Operation) -> bool {
        self.operations.is_empty() || self.operations.contains(&op)
    }
}

/// The API operations, as faults, stats and docs name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Retrieve,
    List,
    Cancel,
    Delete,
    Results,
    CountTokens,
    /// A file upload (OpenAI `POST /v1/files`, Gemini's resumable start and chunks).
    Upload,
    /// Any other file call: list, retrieve, delete.
    Files,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Retrieve => "retrieve",
            Operation::List => "list",
            Operation::Cancel => "cancel",
            Operation::Delete => "delete",
            Operation::Results => "results",
            Operation::CountTokens => "count_tokens",
            Operation::Upload => "upload",
            Operation::Files => "files",
        }
    }
}

/// An injected error, provider-neutral; each surface renders it in its own envelope
/// (Anthropic 500/529/429, OpenAI 500/503/429, Google 500/503/429).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The upstream's internal error.
    Internal,
    /// The upstream is overloaded; retry after this many seconds.
    Overloaded { retry_after: u64 },
    /// The caller is rate limited; retry after this many seconds.
    RateLimited { retry_after: u64 },
}

/// What to do to one call before it reaches its handler.
#[derive(Debug, Default)]
pub struct Decision {
    pub delay: Option<Duration>,
    pub error: Option<Fault>,
}

/// The live fault settings and the seeded draw sequence.
#[derive(Debug)]
pub struct FaultBox {
    seed: u64,
    draws: AtomicU64,
    faults: RwLock<Faults>,
}

impl FaultBox {
    pub fn new(seed: u64, faults: Faults) -> Self {
        FaultBox { seed, draws: AtomicU64::new(0), faults: RwLock::new(faults) }
    }

    pub fn get(&self) -> Faults {
        self.faults.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    fn draw(&self) -> f64 {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        Key::new(self.seed, "fault").u64(n).unit()
    }

    /// Decides the slow-down and injected error of one call.
    pub fn decide(&self, op: Operation) -> Decision {
        let f = self.get();
        if !f.applies_to(op) {
            return Decision::default();
        }
        let mut decision = Decision::default();
        if f.slow_rate > 0.0 && self.draw() < f.slow_rate {
            decision.delay = Some(Duration::from_millis(f.slow_ms));
        }
        let total = f.http_500_rate + f.http_529_rate + f.http_429_rate;
        if total > 0.0 {
            let u = self.draw();
            let retry_after = f.retry_after_secs;
            decision.error = if u < f.http_500_rate {
                Some(Fault::Internal)
            } else if u < f.http_500_rate + f.http_529_rate {
                Some(Fault::Overloaded { retry_after })
            } else if u < total {
                Some(Fault::RateLimited { retry_after })
            } else {
                None
            };
        }
        decision
    }

    /// Whether this results download is cut off, and after how many lines (a draw in
    /// `[0, 1)` the stream scales to its length).
    pub fn cut_results(&self) -> Option<f64> {
        let f = self.get();
        if f.applies_to(Operation::Results)
            && f.cut_results_rate > 0.0
            && self.draw() < f.cut_results_rate
        {
            return Some(self.draw());
        }
        None
    }

    /// Whether this accepted create loses its answer.
    pub fn lose_create(&self) -> bool {
        let f = self.get();
        f.applies_to(Operation::Create)
            && f.create_lost_rate > 0.0
            && self.draw() < f.create_lost_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_one_always_fires_and_rate_zero_never() {
        let b = FaultBox::new(1, Faults { http_529_rate: 1.0, ..Faults::default() });
        for _ in 0..50 {
            assert!(matches!(b.decide(Operation::List).error, Some(Fault::Overloaded { .. })));
        }
        b.set(Faults::default());
        for _ in 0..50 {
            assert!(b.decide(Operation::List).error.is_none());
        }
    }

    #[test]
    fn faults_can_target_one_operation() {
        let f = Faults {
            http_500_rate: 1.0,
            operations: vec![Operation::Results],
            ..Faults::default()
        };
        let b = FaultBox::new(1, f);
        assert!(b.decide(Operation::Create).error.is_none());
        assert!(b.decide(Operation::Results).error.is_some());
    }

    #[test]
    fn rates_are_mixed_roughly_in_proportion() {
        let f = Faults { http_500_rate: 0.2, http_429_rate: 0.3, ..Faults::default() };
        let b = FaultBox::new(9, f);
        let (mut e500, mut e429) = (0, 0);
        for _ in 0..10_000 {
            match b.decide(Operation::Retrieve).error {
                Some(Fault::Internal) => e500 += 1,
                Some(Fault::RateLimited { .. }) => e429 += 1,
                None => {}
                Some(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!((1700..2300).contains(&e500), "{e500}");
        assert!((2700..3300).contains(&e429), "{e429}");
    }

    #[test]
    fn validation_names_the_bad_rate() {
        let f = Faults { slow_rate: 1.5, ..Faults::default() };
        assert!(f.validate().unwrap_err().contains("slow_rate"));
        let f = Faults { http_500_rate: 0.6, http_529_rate: 0.6, ..Faults::default() };
        assert!(f.validate().is_err());
    }
}
