//! Metrics of approvals and notifications (issue 15): counters this replica counts, and
//! gauges read from the ledger at scrape time.

use prometheus::{GaugeVec, IntCounterVec, IntGauge, Opts, Registry};

/// `result` values of `batchcost_notifications_total`.
pub const NOTIFY_RESULTS: [&str; 2] = ["delivered", "failed"];

pub struct WorkflowMetrics {
    notifications: IntCounterVec,
    pending: IntGauge,
    /// Per budget: the most a budget can overshoot from batches in flight (calibrated holds).
    pub possible_overshoot: GaugeVec,
}

impl WorkflowMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let notifications = IntCounterVec::new(
            Opts::new(
                "batchcost_notifications_total",
                "Budget threshold webhook attempts by this replica, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(notifications.clone()))?;
        for r in NOTIFY_RESULTS {
            notifications.with_label_values(&[r]);
        }
        let pending = IntGauge::new(
            "batchcost_notifications_pending",
            "Threshold notifications in the ledger's outbox not yet delivered (all replicas).",
        )?;
        registry.register(Box::new(pending.clone()))?;
        let possible_overshoot = GaugeVec::new(
            Opts::new(
                "batchcost_budget_possible_overshoot_usd",
                "Largest overshoot batches in flight could cause: worst case minus calibrated hold.",
            ),
            &["budget", "project", "period"],
        )?;
        registry.register(Box::new(possible_overshoot.clone()))?;
        Ok(WorkflowMetrics { notifications, pending, possible_overshoot })
    }

    pub fn notification(&self, result: &str) {
        self.notifications.with_label_values(&[result]).inc();
    }

    pub fn set_pending(&self, n: u64) {
        self.pending.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
