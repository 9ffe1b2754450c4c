//! Failpoints: named places where a crash test freezes the gateway so it can SIGKILL it at
//! exactly that moment (between the budget reservation and the upstream's answer, between
//! the upstream's answer and our record of it, around the settlement commit). Armed only
//! by `BATCHCOST_FAILPOINTS`, read once at startup; unarmed, a hook is one branch.
//!
//! `BATCHCOST_FAILPOINTS=after_admit,before_settle_commit@3` arms two points, the second
//! from its third hit on. An armed point prints `failpoint NAME reached` on stderr and
//! never returns; the test reads that line and kills the process.

use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms failpoints.
pub const ENV: &str = "BATCHCOST_FAILPOINTS";

/// Every hook in the code, by name.
pub const NAMES: [&str; 4] =
    ["after_admit", "after_upstream_accept", "before_settle_commit", "after_settle_commit"];

/// A failpoint specification that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FailpointError {
    #[error("{ENV}: unknown failpoint `{0}` (known: {known})", known = NAMES.join(", "))]
    Unknown(String),
    #[error("{ENV}: `{0}`: expected NAME or NAME@N with N >= 1")]
    BadCount(String),
}

#[derive(Debug)]
struct Armed {
    name: &'static str,
    /// The hit (1-based) from which the point fires.
    from_hit: u64,
    hits: AtomicU64,
}

/// The armed failpoints of one process (none in production).
#[derive(Debug, Default)]
pub struct Failpoints {
    armed: Option<Box<[Armed]>>,
}

impl Failpoints {
    /// Reads [`ENV`]; unset or empty arms nothing.
    pub fn from_env() -> Result<Self, FailpointError> {
        match std::env::var(ENV) {
            Ok(spec) => Self::parse(&spec),
            Err(_) => Ok(Self::default()),
        }
    }

    /// Parses `NAME[@N],...`.
    pub fn parse(spec: &str) -> Result<Self, FailpointError> {
        let mut armed = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, from_hit) = match item.split_once('@') {
                Some((n, count)) => match count.parse::<u64>() {
                    Ok(c) if c >= 1 => (n, c),
                    _ => return Err(FailpointError::BadCount(item.to_string())),
                },
                None => (item, 1),
            };
            let name = NAMES
                .iter()
                .find(|k| **k == name)
                .ok_or_else(|| FailpointError::Unknown(name.to_string()))?;
            armed.push(Armed { name, from_hit, hits: AtomicU64::new(0) });
        }
        if !armed.is_empty() {
            // The crash test checks for this line: a binary without the hooks fails loudly.
            tracing::warn!(spec, "failpoints armed");
        }
        Ok(Failpoints { armed: (!armed.is_empty()).then(|| armed.into_boxed_slice()) })
    }

    /// Whether this hit of `name` fires (counts the hit).
    fn fires(&self, name: &str) -> bool {
        let Some(armed) = &self.armed else { return false };
        armed
            .iter()
            .filter(|a| a.name == name)
            .any(|a| a.hits.fetch_add(1, Ordering::Relaxed) + 1 >= a.from_hit)
    }

    /// The hook: returns at once unless `name` is armed and due, else announces it and
    /// parks this task for good (every later hit parks too, so nothing gets past it).
    pub async fn hit(&self, name: &'static str) {
        if self.armed.is_none() || !self.fires(name) {
            return;
        }
        // The crash test's protocol line, not a log: it must appear whatever RUST_LOG says.
        eprintln!("failpoint {name} reached");
        tracing::warn!(failpoint = name, "failpoint reached; waiting to be killed");
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_arm_named_points_from_their_nth_hit() {
        let f = Failpoints::parse("after_admit, before_settle_commit@3").unwrap();
        assert!(f.fires("after_admit"));
        assert!(!f.fires("after_settle_commit"));
        assert!(!f.fires("before_settle_commit"));
        assert!(!f.fires("before_settle_commit"));
        assert!(f.fires("before_settle_commit"));
        assert!(f.fires("before_settle_commit"), "later hits fire too");
        assert!(Failpoints::parse("").unwrap().armed.is_none());
    }

    #[test]
    fn bad_specs_name_the_problem() {
        let e = Failpoints::parse("after_admt").unwrap_err().to_string();
        assert!(e.contains("after_admt") && e.contains("after_admit"), "{e}");
        let e = Failpoints::parse("after_admit@0").unwrap_err().to_string();
        assert!(e.contains("NAME@N"), "{e}");
    }

    #[tokio::test]
    async fn an_unarmed_point_returns_at_once() {
        Failpoints::default().hit("after_admit").await;
        let f = Failpoints::parse("after_admit@2").unwrap();
        f.hit("after_admit").await;
        let parked =
            tokio::time::timeout(std::time::Duration::from_millis(50), f.hit("after_admit"));
        assert!(parked.await.is_err(), "the second hit must park");
    }
}
