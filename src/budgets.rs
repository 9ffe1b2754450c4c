//! Which budgets apply to a submission and which calendar window it falls in. Windows begin
//! at local midnight in the configured zone (DST-safe: a day may last 23 or 25 hours), so a
//! "daily" budget in Seoul resets at 00:00 KST, not at 15:00 or at UTC midnight. Weeks
//! begin on a configured weekday, quarters on 1 January, April, July and October.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::config::{Budget, Period};
use crate::ledger::WindowRef;
use crate::pricing::PriceTable;

/// The project label of a budget that covers every project.
pub const ALL_PROJECTS: &str = "all";

/// One budget window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The window of `period` containing `at`, in `tz`; weeks begin on Monday.
pub fn window(period: Period, tz: &TimeZone, at: Timestamp) -> Window {
    window_from(period, Weekday::Monday, tz, at)
}

/// The window of `period` containing `at`, in `tz`, weeks beginning on `week_starts`.
pub fn window_from(period: Period, week_starts: Weekday, tz: &TimeZone, at: Timestamp) -> Window {
    let local = at.to_zoned(tz.clone());
    let date = local.date();
    let first = match period {
        Period::Day => date,
        Period::Week => {
            date.checked_sub(i64::from(date.weekday().since(week_starts)).days()).unwrap_or(date)
        }
        Period::Month => date.first_of_month(),
        Period::Quarter => {
            let month = (date.month() - 1) / 3 * 3 + 1;
            Date::new(date.year(), month, 1).unwrap_or(date)
        }
    };
    let next = match period {
        Period::Day => first.checked_add(1.day()),
        Period::Week => first.checked_add(1.week()),
        Period::Month => first.checked_add(1.month()),
        Period::Quarter => first.checked_add(3.months()),
    };
    let start = local_midnight(first, tz).unwrap_or(at);
    let end = next.ok().and_then(|d| local_midnight(d, tz)).unwrap_or(Timestamp::MAX);
    Window { start, end }
}

/// The first instant of `date` in `tz` (the start of the day even where midnight is skipped).
fn local_midnight(date: Date, tz: &TimeZone) -> Option<Timestamp> {
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

/// The canonical ids of the models `b`'s `models` filter names, as `provider`'s price rows
/// resolve them at `at` (a name the table does not know stays as written); `None` for a
/// budget that counts every model. Admission holds, and settlement charges, only these.
pub fn selected_models(
    b: &Budget,
    pricing: &PriceTable,
    provider: &str,
    at: Timestamp,
) -> Option<Vec<String>> {
    let canonical =
        |m: &String| pricing.resolve_for(provider, m, at).map_or_else(|| m.clone(), |p| p.model);
    b.models.as_ref().map(|ms| ms.iter().map(canonical).collect())
}

/// `budget`'s window containing `at`, with the limits in force now, as the ledger takes it.
pub fn window_ref(b: &Budget, tz: &TimeZone, at: Timestamp) -> WindowRef {
    let w = window_from(b.period, b.policy.week_starts.weekday(), tz, at);
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

    #[test]
    fn weeks_begin_on_the_configured_day_across_dst() {
        // New York springs forward on Sunday 2026-03-08: a Sunday week holds a 23-hour day.
        let ny = TimeZone::get("America/New_York").unwrap();
        let sun = window_from(Period::Week, Weekday::Sunday, &ny, ts("2026-03-10T12:00:00Z"));
        assert_eq!(sun.start, ts("2026-03-08T05:00:00Z")); // 00:00 EST
        assert_eq!(sun.end, ts("2026-03-15T04:00:00Z")); // 00:00 EDT
        assert_eq!(sun.end.duration_since(sun.start).as_secs(), (7 * 24 - 1) * 3600);
        let mon = window_from(Period::Week, Weekday::Monday, &ny, ts("2026-03-08T12:00:00Z"));
        assert_eq!(mon.start, ts("2026-03-02T05:00:00Z"));
        assert_eq!(mon.end, ts("2026-03-09T04:00:00Z"));
        // The instant of the local midnight belongs to the new week.
        let next = window_from(Period::Week, Weekday::Monday, &ny, mon.end);
        assert_eq!(next.start, mon.end);
        let before = window_from(Period::Week, Weekday::Monday, &ny, ts("2026-03-09T03:59:59Z"));
        assert_eq!(before, mon);
    }

    #[test]
    fn quarters_begin_at_local_midnight_across_dst() {
        // Berlin springs forward on 2026-03-29 (inside Q1) and falls back on 2026-10-25
        // (inside Q4): Q1 starts at +01:00, Q2 at +02:00; Q4 starts at +02:00, ends +01:00.
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let q1 = window(Period::Quarter, &berlin, ts("2026-02-14T10:00:00Z"));
        assert_eq!(q1.start, ts("2025-12-31T23:00:00Z"));
        assert_eq!(q1.end, ts("2026-03-31T22:00:00Z"));
        let q2 = window(Period::Quarter, &berlin, q1.end);
        assert_eq!(q2.start, q1.end);
        assert_eq!(q2.end, ts("2026-06-30T22:00:00Z"));
        let q4 = window(Period::Quarter, &berlin, ts("2026-12-31T22:59:59Z"));
        assert_eq!(q4.start, ts("2026-09-30T22:00:00Z"));
        assert_eq!(q4.end, ts("2026-12-31T23:00:00Z"));
        let q1_next = window(Period::Quarter, &berlin, q4.end);
        assert_eq!(q1_next.start, q4.end);
    }
}
