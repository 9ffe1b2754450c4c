//! The typed `Metrics` struct (contract section 5). It owns its registry: no global
//! statics. Money counters keep exact pico-dollar totals and are converted to float only
//! when scraped, so a counter never drifts from the ledger. Budget and in-flight gauges are
//! computed from the ledger at scrape time, never updated around the codebase.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use jiff::Timestamp;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::budgets::ALL_PROJECTS;
use crate::ledger::{InFlight, ModelUsage, WindowState};
use crate::money::Money;

mod money;
pub mod workflow;

use money::{MoneyCollector, MoneyCounters};

/// `reason` label values of `batchcost_submissions_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    BudgetExceeded,
    InvalidRequest,
    TooLarge,
    Unauthenticated,
    UpstreamError,
    ApprovalRequired,
}

impl RejectReason {
    pub const ALL: [RejectReason; 6] = [
        RejectReason::BudgetExceeded,
        RejectReason::InvalidRequest,
        RejectReason::TooLarge,
        RejectReason::Unauthenticated,
        RejectReason::UpstreamError,
        RejectReason::ApprovalRequired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BudgetExceeded => "budget_exceeded",
            RejectReason::InvalidRequest => "invalid_request",
            RejectReason::TooLarge => "too_large",
            RejectReason::Unauthenticated => "unauthenticated",
            RejectReason::UpstreamError => "upstream_error",
            RejectReason::ApprovalRequired => "approval_required",
        }
    }
}

/// The `project` label when no project could be identified (bad or missing key).
pub const UNKNOWN_PROJECT: &str = "unknown";
/// The `model` label of anything not in the price table.
pub const OTHER_MODEL: &str = "other";

/// Batch durations span seconds (the accelerated simulator) to the 24 h expiry.
const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 72000.0,
    86400.0,
];
/// Actual / reserved: worst-case holds are usually far above the actual cost.
const RATIO_BUCKETS: &[f64] =
    &[0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25];
/// Upstream calls: milliseconds for JSON calls, up to minutes for a large create.
const UPSTREAM_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Everything to do with a scrape's ledger-derived gauges.
pub struct LedgerSnapshot {
    pub now: Timestamp,
    /// Each budget's current window, with its alert fractions.
    pub windows: Vec<(WindowState, Vec<f64>)>,
    pub in_flight: Vec<InFlight>,
}

/// All of batchcost's metrics.
pub struct Metrics {
    registry: Registry,
    models: BTreeSet<String>,
    /// (project, provider) pairs whose in-flight gauges read 0 rather than vanish.
    pairs: Vec<(String, String)>,
    batches_submitted: IntCounterVec,
    batches_settled: IntCounterVec,
    submissions_rejected: IntCounterVec,
    tokens: IntCounterVec,
    requests: IntCounterVec,
    money: std::sync::Arc<MoneyCounters>,
    batch_duration: HistogramVec,
    estimate_ratio: HistogramVec,
    upstream_duration: HistogramVec,
    /// Issue 16: 1 when the upstream's last answer was usable, 0 when it was a 5xx or none.
    upstream_up: GaugeVec,
    upstream_last_ok: GaugeVec,
    last_settlement: Gauge,
    budget_limit: GaugeVec,
    budget_spent: GaugeVec,
    budget_reserved: GaugeVec,
    budget_threshold: GaugeVec,
    budget_window_end: GaugeVec,
    batches_in_flight: GaugeVec,
    requests_in_flight: GaugeVec,
    oldest_batch_age: GaugeVec,
    /// Approvals and notifications.
    pub workflow: workflow::WorkflowMetrics,
    scrape: Mutex<()>,
}

fn name(n: &str) -> String {
    format!("batchcost_{n}")
}

impl Metrics {
    /// Registers every metric and pre-creates the series for configured projects so rates
    /// start from zero instead of appearing with their first event.
    pub fn new(
        version: &str,
        pricing_version: &str,
        projects: &[String],
        providers: &[&str],
        models: impl IntoIterator<Item = String>,
    ) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |n: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name(n), help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge = |n: &str, help: &str, labels: &[&str]| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(name(n), help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let histogram = |n: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name(n), help).buckets(buckets.to_vec()),
                labels,
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let pp = &["project", "provider"];
        let m = Metrics {
            models: models.into_iter().collect(),
            pairs: projects
                .iter()
                .flat_map(|p| providers.iter().map(move |prov| (p.clone(), prov.to_string())))
                .collect(),
            batches_submitted: counter(
                "batches_submitted_total",
                "Batches accepted upstream.",
                pp,
            )?,
            batches_settled: counter(
                "batches_settled_total",
                "Batches settled by this replica.",
                pp,
            )?,
            submissions_rejected: counter(
                "submissions_rejected_total",
                "Batch submissions refused, by reason.",
                &["project", "reason"],
            )?,
            tokens: counter(
                "tokens_total",
                "Tokens of settled batches, by kind.",
                &["project", "provider", "model", "kind"],
            )?,
            requests: counter(
                "requests_total",
                "Requests of settled batches, by result.",
                &["project", "provider", "model", "result"],
            )?,
            money: std::sync::Arc::new(MoneyCounters::new()?),
            batch_duration: histogram(
                "batch_duration_seconds",
                "Submitted to ended, as the upstream reports it.",
                pp,
                DURATION_BUCKETS,
            )?,
            estimate_ratio: histogram(
                "settlement_estimate_ratio",
                "Settled cost divided by the worst-case reservation, per batch and model.",
                &["provider", "model"],
                RATIO_BUCKETS,
            )?,
            upstream_duration: histogram(
                "upstream_request_duration_seconds",
                "Upstream API calls by operation and HTTP status (`error` when no answer).",
                &["provider", "operation", "code"],
                UPSTREAM_BUCKETS,
            )?,
            upstream_up: gauge(
                "upstream_up",
                "1 if the upstream's last answer was usable (any status below 500), 0 if it \
                 was a 5xx or no answer (connection failure, timeout). Set by every call, \
                 the tracker's polls included.",
                &["provider"],
            )?,
            upstream_last_ok: gauge(
                "upstream_last_success_timestamp_seconds",
                "When the upstream last gave a usable answer.",
                &["provider"],
            )?,
            last_settlement: {
                let g = Gauge::new(
                    name("last_settlement_timestamp_seconds"),
                    "When this replica last settled a batch.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            budget_limit: gauge(
                "budget_limit_usd",
                "Budget limit in USD.",
                &["budget", "project", "period"],
            )?,
            budget_spent: gauge(
                "budget_spent_usd",
                "Settled cost in the current window.",
                &["budget", "project", "period"],
            )?,
            budget_reserved: gauge(
                "budget_reserved_usd",
                "Worst-case holds of unsettled batches in the current window.",
                &["budget", "project", "period"],
            )?,
            budget_threshold: gauge(
                "budget_alert_threshold_ratio",
                "Configured alert fractions of each budget (value = the fraction).",
                &["budget", "project", "period", "threshold"],
            )?,
            budget_window_end: gauge(
                "budget_window_end_timestamp_seconds",
                "End of each budget's current window.",
                &["budget", "project", "period"],
            )?,
            batches_in_flight: gauge(
                "batches_in_flight",
                "Batches submitted and not yet settled.",
                pp,
            )?,
            requests_in_flight: gauge("requests_in_flight", "Requests of batches in flight.", pp)?,
            oldest_batch_age: gauge(
                "oldest_batch_age_seconds",
                "Age of the oldest batch still in flight.",
                pp,
            )?,
            workflow: workflow::WorkflowMetrics::new(&registry)?,
            scrape: Mutex::new(()),
            registry,
        };
        m.registry.register(Box::new(MoneyCollector(m.money.clone())))?;
        let info = IntGaugeVec::new(
            Opts::new(name("build_info"), "Build and price table versions."),
            &["version", "pricing_version"],
        )?;
        info.with_label_values(&[version, pricing_version]).set(1);
        m.registry.register(Box::new(info))?;
        for p in projects {
            for r in RejectReason::ALL {
                m.submissions_rejected.with_label_values(&[p, r.as_str()]);
            }
            for prov in providers {
                m.batches_submitted.with_label_values(&[p.as_str(), prov]);
                m.batches_settled.with_label_values(&[p.as_str(), prov]);
            }
        }
        m.submissions_rejected
            .with_label_values(&[UNKNOWN_PROJECT, RejectReason::Unauthenticated.as_str()]);
        Ok(m)
    }

    /// A model id as a label: price-table ids only, anything else is `other`.
    pub fn model_label<'a>(&self, model: &'a str) -> &'a str {
        if self.models.contains(model) { model } else { OTHER_MODEL }
    }

    pub fn rejected(&self, project: &str, reason: RejectReason) {
        self.submissions_rejected.with_label_values(&[project, reason.as_str()]).inc();
    }

    pub fn submitted(&self, project: &str, provider: &str) {
        self.batches_submitted.with_label_values(&[project, provider]).inc();
    }

    pub fn upstream_call(&self, provider: &str, operation: &str, code: &str, seconds: f64) {
        self.upstream_duration.with_label_values(&[provider, operation, code]).observe(seconds);
        let ok = code.parse::<u16>().is_ok_and(|c| c < 500);
        self.upstream_up.with_label_values(&[provider]).set(if ok { 1.0 } else { 0.0 });
        if ok {
            let now = Timestamp::now().as_millisecond() as f64 / 1000.0;
            self.upstream_last_ok.with_label_values(&[provider]).set(now);
        }
    }

    /// Counts one settled batch. `reserved` pairs each model with its worst-case share.
    pub fn settled(
        &self,
        project: &str,
        provider: &str,
        usage: &[ModelUsage],
        reserved: &BTreeMap<String, Money>,
        duration_seconds: Option<f64>,
        now: Timestamp,
    ) {
        self.batches_settled.with_label_values(&[project, provider]).inc();
        for u in usage {
            let model = self.model_label(&u.model);
            let t = &u.tokens;
            for (kind, n) in [
                ("input", t.input),
                ("output", t.output),
                ("cache_write_5m", t.cache_write_5m),
                ("cache_write_1h", t.cache_write_1h),
                ("cache_read", t.cache_read),
            ] {
                self.tokens.with_label_values(&[project, provider, model, kind]).inc_by(n);
            }
            let r = &u.requests;
            for (result, n) in [
                ("succeeded", r.succeeded),
                ("errored", r.errored),
                ("canceled", r.canceled),
                ("expired", r.expired),
            ] {
                self.requests.with_label_values(&[project, provider, model, result]).inc_by(n);
            }
            self.money.add(project, provider, model, u.cost, u.list_cost);
            if let Some(held) = reserved.get(&u.model).filter(|h| h.picos() > 0) {
                let ratio = u.cost.picos() as f64 / held.picos() as f64;
                self.estimate_ratio.with_label_values(&[provider, model]).observe(ratio);
            }
        }
        if let Some(d) = duration_seconds {
            self.batch_duration.with_label_values(&[project, provider]).observe(d.max(0.0));
        }
        self.last_settlement.set(now.as_millisecond() as f64 / 1000.0);
    }

    /// Exact settled cost this replica counted, for reconciliation tests.
    pub fn cost_total(&self) -> Money {
        self.money.total()
    }

    /// Renders the exposition text with ledger gauges as of `snap`.
    pub fn render(&self, snap: &LedgerSnapshot) -> Result<String, prometheus::Error> {
        let _one_scrape_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        for g in
            [&self.budget_limit, &self.budget_spent, &self.budget_reserved, &self.budget_window_end]
        {
            g.reset();
        }
        self.budget_threshold.reset();
        for (w, alert_at) in &snap.windows {
            let labels = [w.budget.as_str(), w.project.as_str(), w.period.as_str()];
            if let Some(limit) = w.limit {
                self.budget_limit.with_label_values(&labels).set(limit.to_f64_usd());
            }
            self.budget_spent.with_label_values(&labels).set(w.spent.to_f64_usd());
            self.budget_reserved.with_label_values(&labels).set(w.reserved.to_f64_usd());
            self.budget_window_end
                .with_label_values(&labels)
                .set(w.end.as_millisecond() as f64 / 1000.0);
            for f in alert_at {
                let t = format!("{f}");
                self.budget_threshold
                    .with_label_values(&[labels[0], labels[1], labels[2], t.as_str()])
                    .set(*f);
            }
        }
        for g in [&self.batches_in_flight, &self.requests_in_flight, &self.oldest_batch_age] {
            g.reset();
            for (project, provider) in &self.pairs {
                g.with_label_values(&[project.as_str(), provider.as_str()]).set(0.0);
            }
        }
        for f in &snap.in_flight {
            let labels = [f.project.as_str(), f.provider.as_str()];
            self.batches_in_flight.with_label_values(&labels).set(f.batches as f64);
            self.requests_in_flight.with_label_values(&labels).set(f.requests as f64);
            let age = snap.now.duration_since(f.oldest_submitted_at).as_secs_f64();
            self.oldest_batch_age.with_label_values(&labels).set(age.max(0.0));
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// For the global-budget label value, re-exported for the dashboard's conventions.
pub const GLOBAL_BUDGET_PROJECT: &str = ALL_PROJECTS;
