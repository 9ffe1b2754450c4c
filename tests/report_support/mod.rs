//! Report test fixtures: a real SQLite ledger filled through the ledger's own admission
//! and settlement calls (so budget windows are filled as the gateway fills them), costs
//! priced from the repo's `pricing.toml`, and a small CSV reader.
#![allow(dead_code)]

#[path = "../storage_support/mod.rs"]
pub mod storage;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use batchcost::budgets::{applicable, window_ref};
use batchcost::config::{Budget, Period};
use batchcost::ledger::{
    Admit, Hold, Ledger, ModelUsage, NewSubmission, ResultCounts, Settlement, WindowRef,
};
use batchcost::money::Money;
use batchcost::pricing::{PriceTable, TokenUsage};
use batchcost::report::{ReportQuery, spend_report};
use futures_util::StreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;

pub const TZ: &str = "Asia/Seoul";

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn pricing() -> PriceTable {
    PriceTable::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml")).unwrap()
}

pub fn budget(name: &str, project: Option<&str>, period: Period) -> Budget {
    Budget {
        name: name.into(),
        project: project.map(str::to_string),
        period,
        limit: Some(Money::from_usd(1_000_000)),
        limit_input_tokens: None,
        limit_output_tokens: None,
        alert_at: vec![],
        policy: Default::default(),
        provider: None,
        models: None,
    }
}

/// One batch to settle: per model, the usages of its succeeded requests, plus failures.
pub struct Batch<'a> {
    pub id: &'a str,
    pub project: &'a str,
    pub submitted: &'a str,
    pub ended: &'a str,
    pub models: Vec<(&'a str, Vec<TokenUsage>)>,
    pub errored: u64,
}

/// A usage of `n`-dependent size; `geo_us` and searches make the uplift and fee appear.
pub fn usage(n: u64, searches: u64, geo_us: bool) -> TokenUsage {
    TokenUsage {
        input: 900 + 37 * n,
        output: 120 + 11 * n,
        cache_write_5m: if n % 2 == 0 { 1024 + n } else { 0 },
        cache_write_1h: if n % 3 == 0 { 2048 } else { 0 },
        cache_read: if n % 2 == 1 { 5000 + n } else { 0 },
        web_search_requests: searches,
        geo_us,
        ..Default::default()
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// The SQLite file's path (unused on PostgreSQL: see `store`).
    pub db: std::path::PathBuf,
    pub ledger: Arc<dyn Ledger>,
    pub pricing: PriceTable,
    pub tz: TimeZone,
    pub budgets: Vec<Budget>,
    /// The ledger database (its URL), dropped last.
    pub store: storage::TestDb,
}

impl Fixture {
    pub async fn new(budgets: Vec<Budget>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.db");
        let store = storage::TestDb::fresh(dir.path());
        let ledger = batchcost::ledger::open(&store.url, Default::default()).await.unwrap();
        Fixture {
            dir,
            db,
            store,
            ledger,
            pricing: pricing(),
            tz: TimeZone::get(TZ).unwrap(),
            budgets,
        }
    }

    /// The budget windows a submission at `at` by `project` counts against, as the gateway
    /// computes them.
    pub fn windows(&self, project: &str, at: Timestamp) -> Vec<WindowRef> {
        applicable(&self.budgets, project).map(|b| window_ref(b, &self.tz, at)).collect()
    }

    /// Admits, submits and settles `b`; returns the exact cost recorded.
    pub async fn settle(&self, b: Batch<'_>) -> Money {
        let at = ts(b.submitted);
        let mut models = Vec::new();
        for (model, usages) in &b.models {
            let price = self.pricing.resolve(model, at).expect("model in pricing.toml");
            let mut m = ModelUsage { model: price.model.clone(), ..Default::default() };
            for u in usages {
                let c = price.cost(u);
                m.cost += c.cost;
                m.list_cost += c.list_cost;
                m.tokens.input += u.input;
                m.tokens.output += u.output;
                m.tokens.cache_write_5m += u.cache_write_5m;
                m.tokens.cache_write_1h += u.cache_write_1h;
                m.tokens.cache_read += u.cache_read;
                m.tokens.web_search_requests += u.web_search_requests;
            }
            m.requests = ResultCounts { succeeded: usages.len() as u64, ..Default::default() };
            models.push(m);
        }
        if let Some(first) = models.first_mut() {
            first.requests.errored = b.errored;
        }
        let sub = NewSubmission {
            sub_id: format!("sub_{}", b.id),
            project: b.project.into(),
            provider: "anthropic".into(),
            submitted_at: at,
            request_count: models.iter().map(|m| m.requests.succeeded + m.requests.errored).sum(),
            body_hash: format!("hash_{}", b.id),
            custom_id_fingerprint: 0,
            hold: Hold { usd: Money::from_usd(100), input_tokens: 0, output_tokens: 0 },
            windows: self.windows(b.project, at),
            estimate_json: "{}".into(),
            dedupe_since: at,
            lease: None,
            bounds: Vec::new(),
        };
        assert!(matches!(self.ledger.admit(&sub).await.unwrap(), Admit::Admitted));
        assert!(self.ledger.mark_submitted(&sub.sub_id, b.id, at).await.unwrap());
        let end = ts(b.ended);
        let s = Settlement {
            ended_at: end,
            settled_at: end,
            models,
            budget_models: Default::default(),
        };
        assert!(self.ledger.settle(&sub.sub_id, &s).await.unwrap());
        s.cost()
    }

    pub fn query(&self, from: &str, to: &str, group_by: &str, format: &str) -> ReportQuery {
        ReportQuery::parse(from, to, group_by, format, &self.tz, TZ).unwrap()
    }

    /// The whole report as text, and how many chunks it came in.
    pub async fn report_chunks(&self, q: &ReportQuery) -> (String, usize) {
        let mut chunks = spend_report(self.ledger.as_ref(), &self.pricing, q);
        let (mut out, mut n) = (Vec::new(), 0);
        while let Some(c) = chunks.next().await {
            out.extend_from_slice(&c.unwrap());
            n += 1;
        }
        (String::from_utf8(out).unwrap(), n)
    }

    pub async fn report(&self, from: &str, to: &str, group_by: &str, format: &str) -> String {
        self.report_chunks(&self.query(from, to, group_by, format)).await.0
    }

    /// Spent in the window of `budget` that contains `at`.
    pub async fn spent(&self, budget: &str, project: &str, at: &str) -> Money {
        let refs: Vec<WindowRef> =
            self.windows(project, ts(at)).into_iter().filter(|w| w.budget == budget).collect();
        assert_eq!(refs.len(), 1, "budget {budget} applies to {project}");
        self.ledger.windows(&refs).await.unwrap()[0].spent
    }
}

/// Six batches over three Seoul days in two projects; one uses two models, one runs in
/// the US on a model with the uplift, one uses web search.
pub async fn filled() -> (Fixture, Money) {
    let f = Fixture::new(vec![budget("all-daily", None, Period::Day)]).await;
    let mut total = Money::ZERO;
    let batches = [
        Batch {
            id: "msgbatch_a1",
            project: "alpha",
            submitted: "2026-03-10T01:00:00Z",
            ended: "2026-03-10T02:00:00Z",
            models: vec![
                ("claude-sonnet-4-6", (0..4).map(|n| usage(n, 0, false)).collect()),
                ("claude-haiku-4-5", (0..3).map(|n| usage(n, 0, false)).collect()),
            ],
            errored: 2,
        },
        Batch {
            id: "msgbatch_b1",
            project: "beta",
            submitted: "2026-03-10T03:00:00Z",
            ended: "2026-03-10T05:30:00.25Z",
            models: vec![("claude-opus-4-6", (0..5).map(|n| usage(n, 0, n % 2 == 0)).collect())],
            errored: 0,
        },
        Batch {
            id: "msgbatch_a2",
            project: "alpha",
            submitted: "2026-03-11T10:00:00.5Z",
            ended: "2026-03-11T10:00:00.75Z",
            models: vec![("claude-sonnet-4-6", (0..6).map(|n| usage(n, n % 3, false)).collect())],
            errored: 1,
        },
        Batch {
            id: "msgbatch_b2",
            project: "beta",
            submitted: "2026-03-11T12:00:00Z",
            ended: "2026-03-11T13:00:00Z",
            models: vec![("claude-haiku-4-5", (0..2).map(|n| usage(n, 0, false)).collect())],
            errored: 0,
        },
        Batch {
            id: "msgbatch_a3",
            project: "alpha",
            submitted: "2026-03-12T01:00:00Z",
            ended: "2026-03-12T01:10:00Z",
            models: vec![("claude-haiku-4-5", vec![usage(9, 0, false)])],
            errored: 0,
        },
    ];
    for b in batches {
        total += f.settle(b).await;
    }
    (f, total)
}

/// RFC 4180 reader: quoted fields with doubled quotes; empty unquoted fields are `None`.
pub fn parse_csv(text: &str) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut in_quotes, mut chars) = (false, false, text.chars().peekable());
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => in_quotes = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => (in_quotes, quoted) = (true, true),
            ',' | '\n' => {
                let f = std::mem::take(&mut field);
                row.push((quoted || !f.is_empty()).then_some(f));
                quoted = false;
                if c == '\n' {
                    rows.push(std::mem::take(&mut row));
                }
            }
            '\r' => {}
            _ => field.push(c),
        }
    }
    assert!(field.is_empty() && row.is_empty(), "CSV must end with a line end");
    rows
}

/// CSV rows as maps from header name to value.
pub fn csv_maps(text: &str) -> Vec<HashMap<String, Option<String>>> {
    let rows = parse_csv(text);
    let header: Vec<String> = rows[0].iter().map(|h| h.clone().unwrap()).collect();
    rows[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.len(), header.len(), "every row has every column");
            header.iter().cloned().zip(r.iter().cloned()).collect()
        })
        .collect()
}

pub fn money(v: &Option<String>) -> Money {
    Money::parse_usd(v.as_deref().expect("a money cell")).unwrap()
}
