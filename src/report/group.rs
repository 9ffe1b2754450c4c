//! Spend grouped by any subset of day, project, provider and model. Rows arrive in
//! submission order, so when grouping by day a day's groups are complete as soon as a
//! later day appears and are handed out then: memory holds one day's groups, not the range.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::Serialize;

use super::query::{DayOf, GroupBy};
use crate::ledger::SpendRow;
use crate::money::Money;

/// A group's identity; a dimension not grouped by is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpendKey {
    pub date: Option<Date>,
    pub project: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
}

/// The contract's numeric columns (section 8), exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SpendTotals {
    /// Distinct batches: a batch using two models counts once in a group without `model`.
    pub batches: u64,
    pub requests_succeeded: u64,
    pub requests_errored: u64,
    pub requests_canceled: u64,
    pub requests_expired: u64,
    /// Input tokens neither written to nor read from the cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// 5-minute and 1-hour cache writes.
    pub cache_write_tokens: u64,
    pub cache_read_tokens: u64,
    pub cost: Money,
    pub list_cost: Money,
}

impl SpendTotals {
    /// What batching saved: standard price minus batch price.
    pub fn savings(&self) -> Money {
        self.list_cost - self.cost
    }

    /// Adds one row's usage; the caller decides whether it is a new batch.
    fn add(&mut self, row: &SpendRow, new_batch: bool) {
        let (t, q) = (&row.usage.tokens, &row.usage.requests);
        self.batches += u64::from(new_batch);
        self.requests_succeeded += q.succeeded;
        self.requests_errored += q.errored;
        self.requests_canceled += q.canceled;
        self.requests_expired += q.expired;
        self.input_tokens += t.input;
        self.output_tokens += t.output;
        self.cache_write_tokens += t.cache_write_5m + t.cache_write_1h;
        self.cache_read_tokens += t.cache_read;
        self.cost += row.usage.cost;
        self.list_cost += row.usage.list_cost;
    }
}

struct Group {
    totals: SpendTotals,
    /// The last batch counted here; a batch's rows are consecutive, so this dedupes them.
    last_batch: String,
}

/// Folds spend rows into groups.
pub struct Grouper {
    by: GroupBy,
    days: DayOf,
    day: Option<Date>,
    open: BTreeMap<SpendKey, Group>,
    /// Groups that are complete, in key order, for the caller to take.
    pub ready: Vec<(SpendKey, SpendTotals)>,
    total: SpendTotals,
    last_batch: String,
}

impl Grouper {
    pub fn new(by: GroupBy, days: DayOf) -> Self {
        Grouper {
            by,
            days,
            day: None,
            open: BTreeMap::new(),
            ready: Vec::new(),
            total: SpendTotals::default(),
            last_batch: String::new(),
        }
    }

    pub fn add(&mut self, row: &SpendRow) {
        let date = self.days.date(row.submitted_at);
        if self.by.day && self.day != Some(date) {
            self.flush();
            self.day = Some(date);
        }
        let key = SpendKey {
            date: self.by.day.then_some(date),
            project: self.by.project.then(|| row.project.clone()),
            // Always per provider: providers invoice separately, so no row mixes two bills,
            // and the provider column is filled in every grouping.
            provider: Some(row.provider.clone()),
            model: self.by.model.then(|| row.usage.model.clone()),
        };
        let g = self
            .open
            .entry(key)
            .or_insert_with(|| Group { totals: SpendTotals::default(), last_batch: String::new() });
        let new_batch = g.last_batch != row.sub_id;
        if new_batch {
            g.last_batch.clone_from(&row.sub_id);
        }
        g.totals.add(row, new_batch);
        let new_overall = self.last_batch != row.sub_id;
        if new_overall {
            self.last_batch.clone_from(&row.sub_id);
        }
        self.total.add(row, new_overall);
    }

    /// Moves every open group to `ready`.
    pub fn flush(&mut self) {
        let open = std::mem::take(&mut self.open);
        self.ready.extend(open.into_iter().map(|(k, g)| (k, g.totals)));
    }

    /// The totals over every row so far.
    pub fn total(&self) -> SpendTotals {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{ModelUsage, ResultCounts, TokenTotals};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    fn row(sub: &str, at: &str, project: &str, model: &str, cost: i64) -> SpendRow {
        SpendRow {
            sub_id: sub.into(),
            upstream_id: None,
            project: project.into(),
            provider: "anthropic".into(),
            submitted_at: at.parse::<Timestamp>().unwrap(),
            ended_at: None,
            settled_at: None,
            usage: ModelUsage {
                model: model.into(),
                tokens: TokenTotals {
                    input: 10,
                    cache_write_5m: 1,
                    cache_write_1h: 2,
                    ..Default::default()
                },
                requests: ResultCounts { succeeded: 1, errored: 1, ..Default::default() },
                cost: Money::from_i64(cost),
                list_cost: Money::from_i64(2 * cost),
            },
        }
    }

    fn run(by: &str, rows: &[SpendRow]) -> (Vec<(SpendKey, SpendTotals)>, SpendTotals) {
        let mut g = Grouper::new(
            GroupBy::parse(by).unwrap(),
            DayOf::new(TimeZone::get("Asia/Seoul").unwrap()),
        );
        for r in rows {
            g.add(r);
        }
        g.flush();
        (std::mem::take(&mut g.ready), g.total())
    }

    fn sample() -> Vec<SpendRow> {
        vec![
            // 23:50 KST on 1 March: the batch uses two models.
            row("b1", "2026-03-01T14:50:00Z", "alpha", "haiku", 100),
            row("b1", "2026-03-01T14:50:00Z", "alpha", "sonnet", 300),
            row("b2", "2026-03-01T14:55:00Z", "beta", "haiku", 7),
            // 00:10 KST on 2 March.
            row("b3", "2026-03-01T15:10:00Z", "alpha", "haiku", 11),
        ]
    }

    #[test]
    fn every_subset_sums_to_the_same_total_and_counts_batches_once() {
        let rows = sample();
        for by in [
            "",
            "day",
            "project",
            "provider",
            "model",
            "day,model",
            "project,provider",
            "day,project,provider,model",
        ] {
            let (groups, total) = run(by, &rows);
            let cost: Money = groups.iter().map(|(_, t)| t.cost).sum();
            assert_eq!(cost, Money::from_i64(418), "{by}");
            assert_eq!(total.cost, Money::from_i64(418));
            assert_eq!(total.batches, 3, "{by}");
            assert_eq!(total.requests_errored, 4);
            assert_eq!(total.cache_write_tokens, 12);
            assert_eq!(total.savings(), Money::from_i64(418));
        }
        let (groups, _) = run("", &rows);
        assert_eq!(groups.len(), 1);
        let per_provider = SpendKey { provider: Some("anthropic".into()), ..SpendKey::default() };
        assert_eq!(groups[0].0, per_provider, "no grouping: one row per provider");
    }

    #[test]
    fn days_are_seoul_days_and_model_groups_count_shared_batches_in_each() {
        let (groups, _) = run("day,project", &sample());
        let d1 = jiff::civil::date(2026, 3, 1);
        let d2 = jiff::civil::date(2026, 3, 2);
        let got: Vec<_> = groups
            .iter()
            .map(|(k, t)| (k.date.unwrap(), k.project.clone().unwrap(), t.batches, t.cost))
            .collect();
        assert_eq!(
            got,
            vec![
                (d1, "alpha".to_string(), 1, Money::from_i64(400)),
                (d1, "beta".to_string(), 1, Money::from_i64(7)),
                (d2, "alpha".to_string(), 1, Money::from_i64(11)),
            ]
        );
        let (by_model, _) = run("model", &sample());
        let haiku = &by_model[0];
        assert_eq!(haiku.0.model.as_deref(), Some("haiku"));
        assert_eq!((haiku.1.batches, haiku.1.cost), (3, Money::from_i64(118)));
        assert_eq!(by_model[1].1.batches, 1);
        assert!(by_model.iter().all(|(k, _)| k.date.is_none() && k.project.is_none()));
    }

    #[test]
    fn a_finished_day_is_released_before_the_range_ends() {
        let mut g = Grouper::new(
            GroupBy::parse("day").unwrap(),
            DayOf::new(TimeZone::get("Asia/Seoul").unwrap()),
        );
        let rows = sample();
        for r in &rows[..3] {
            g.add(r);
        }
        assert!(g.ready.is_empty());
        g.add(&rows[3]);
        assert_eq!(g.ready.len(), 1, "1 March is complete once a 2 March row arrives");
    }
}
