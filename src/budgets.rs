//! Which budgets apply to a submission and which calendar window it falls in. Windows begin
//! at local midnight in the configured zone (DST-safe: a day may last 23 or 25 hours), so a
//! "daily" budget in Seoul resets at 00:00 KST, not at 15:00 or at UTC midnight.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::config::{Budget, Period};
use crate::ledger::WindowRef;

/// The project label of a budget that covers every project.
pub const ALL_PROJECTS: &str = "all";

/// One budget window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The window of `period` containing `at`, in `tz`.
pub fn window(period: Period, tz: &TimeZone, at: Timestamp) -> Window {
    let local = at.to_zoned(tz.clone());
    let first = match period {
        Period::Day => local.date(),
        Period::Month => local.date().first_of_month(),
    };
    let next = match period {
        Period::Day => first.checked_add(1.day()),
        Period::Month => first.checked_add(1.month()),
    };
    let start = local_midnight(first, tz).unwrap_or(at);
    let end = next.ok().and_then(|d| local_midnight(d, tz)).unwrap_or(Timestamp::MAX);
    Window { start, end }
}

/// The first instant of `date` in `tz` (the start of the day even where midnight is skipped).
fn local_midnight(date: jiff::civil::Date, tz: &TimeZone) -> Option<Timestamp> {
    date.to_zoned(tz.clone()).ok().map(|z| z.timestamp())
}

/// Budgets covering `project`: its own and the global ones.
pub fn applicable<'a>(budgets: &'a [Budget], project: &'a str) -> impl Iterator<Item = &'a Budget> {
    budgets.iter().filter(move |b| b.project.as_deref().is_none_or(|p| p == project))
}

/// Budgets covering a batch of `project` on upstream `provider`: the project's and the
/// global ones, less those whose `provider` filter names another upstream.
pub fn applicable_to<'a>(
    budgets: &'a [Budget],
    project: &'a str,
    provider: &'a str,
) -> impl Iterator<Item = &'a Budget> {
    applicable(budgets, project)
        .filter(move |b| b.provider.as_deref().is_none_or(|p| p == provider))
}

/// `budget`'s window containing `at`, with the limits in force now, as the ledger takes it.
pub fn window_ref(b: &Budget, tz: &TimeZone, at: Timestamp) -> WindowRef {
    let w = window(b.period, tz, at);
    WindowRef {
        budget: b.name.clone(),
        project: project_label(b).to_string(),
        period: b.period,
        start: w.start,
        end: w.end,
        limit: b.limit,
        limit_input_tokens: b.limit_input_tokens,
        limit_output_tokens: b.limit_output_tokens,
        hold: None,
    }
}

/// The `project` label value of a budget.
pub fn project_label(b: &Budget) -> &str {
    b.project.as_deref().unwrap_or(ALL_PROJECTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn days_begin_at_local_midnight() {
        let seoul = TimeZone::get("Asia/Seoul").unwrap();
        let w = window(Period::Day, &seoul, ts("2026-03-10T14:59:59Z"));
        assert_eq!(w.start, ts("2026-03-09T15:00:00Z"));
        assert_eq!(w.end, ts("2026-03-10T15:00:00Z"));
        let next = window(Period::Day, &seoul, ts("2026-03-10T15:00:00Z"));
        assert_eq!(next.start, w.end);
    }

    #[test]
    fn months_and_dst_days() {
        let seoul = TimeZone::get("Asia/Seoul").unwrap();
        let m = window(Period::Month, &seoul, ts("2026-01-31T15:30:00Z"));
        assert_eq!(m.start, ts("2026-01-31T15:00:00Z"));
        assert_eq!(m.end, ts("2026-02-28T15:00:00Z"));
        let ny = TimeZone::get("America/New_York").unwrap();
        let d = window(Period::Day, &ny, ts("2026-03-08T12:00:00Z"));
        assert_eq!(d.end.duration_since(d.start).as_secs(), 23 * 3600);
    }
}
