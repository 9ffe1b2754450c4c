//! What a report asks for: a range of local days, the dimensions to group by and the
//! output form, parsed the same way for the command line and the HTTP API.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::budgets::{Window, window};
use crate::config::Period;

/// The dimensions spend can be grouped by, in column order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Day,
    Project,
    Provider,
    Model,
}

impl Dimension {
    pub const ALL: [Dimension; 4] =
        [Dimension::Day, Dimension::Project, Dimension::Provider, Dimension::Model];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Day => "day",
            Dimension::Project => "project",
            Dimension::Provider => "provider",
            Dimension::Model => "model",
        }
    }
}

/// Any subset of the dimensions; empty means one total row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupBy {
    pub day: bool,
    pub project: bool,
    pub provider: bool,
    pub model: bool,
}

impl GroupBy {
    pub const DEFAULT: &'static str = "day,project,model";

    /// `day,project,model`; an empty string or `none` groups nothing.
    pub fn parse(s: &str) -> Result<GroupBy, String> {
        let mut g = GroupBy::default();
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(g);
        }
        for part in s.split(',').map(str::trim) {
            let slot = match part {
                "day" | "date" => &mut g.day,
                "project" => &mut g.project,
                "provider" => &mut g.provider,
                "model" => &mut g.model,
                other => {
                    return Err(format!(
                        "unknown dimension `{}`, expected a comma-separated list of day, project, provider, model",
                        other.chars().take(40).collect::<String>()
                    ));
                }
            };
            if *slot {
                return Err(format!("`{part}` is listed twice"));
            }
            *slot = true;
        }
        Ok(g)
    }

    pub fn has(&self, d: Dimension) -> bool {
        match d {
            Dimension::Day => self.day,
            Dimension::Project => self.project,
            Dimension::Provider => self.provider,
            Dimension::Model => self.model,
        }
    }

    pub fn dimensions(&self) -> Vec<Dimension> {
        Dimension::ALL.into_iter().filter(|d| self.has(*d)).collect()
    }
}

/// Output form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people; money rounded to cents.
    Table,
    /// The contract's columns, exact decimals.
    Csv,
    /// `{"rows": [...], "totals": {...}}`, exact decimal strings.
    Json,
    /// FinOps FOCUS 1.2 CSV: one row per batch, model and token class.
    Focus,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        Ok(match s.trim() {
            "table" => Format::Table,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "focus" => Format::Focus,
            other => {
                return Err(format!(
                    "unknown format `{}`, expected table, csv, json or focus",
                    other.chars().take(40).collect::<String>()
                ));
            }
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Table => "text/plain; charset=utf-8",
            Format::Csv | Format::Focus => "text/csv; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// Which input a bad value came from; the command line and the HTTP API name it their way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    From,
    To,
    GroupBy,
    Format,
}

/// A bad report parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub param: Param,
    pub message: String,
}

impl ParamError {
    /// As a command-line flag: `--group-by: ...`.
    pub fn flag(&self) -> String {
        let name = match self.param {
            Param::From => "--from",
            Param::To => "--to",
            Param::GroupBy => "--group-by",
            Param::Format => "--format",
        };
        format!("{name}: {}", self.message)
    }

    /// As a query parameter: `group_by: ...`.
    pub fn query(&self) -> String {
        let name = match self.param {
            Param::From => "from",
            Param::To => "to",
            Param::GroupBy => "group_by",
            Param::Format => "format",
        };
        format!("{name}: {}", self.message)
    }
}

/// A validated report request.
#[derive(Clone, Debug)]
pub struct ReportQuery {
    /// First local day included.
    pub from_date: Date,
    /// First local day not included.
    pub to_date: Date,
    /// Local midnight of `from_date`.
    pub from: Timestamp,
    /// Local midnight of `to_date`.
    pub to: Timestamp,
    pub group_by: GroupBy,
    pub format: Format,
    pub tz: TimeZone,
    pub tz_name: String,
    /// Table form: every column (tokens, list price, provider) instead of the narrow set.
    pub wide: bool,
}

impl ReportQuery {
    /// Dates are `YYYY-MM-DD` in `tz`; `from` is included, `to` is not.
    pub fn parse(
        from: &str,
        to: &str,
        group_by: &str,
        format: &str,
        tz: &TimeZone,
        tz_name: &str,
    ) -> Result<ReportQuery, ParamError> {
        let bad = |param, message| ParamError { param, message };
        let from_date = parse_date(from).map_err(|m| bad(Param::From, m))?;
        let to_date = parse_date(to).map_err(|m| bad(Param::To, m))?;
        if to_date <= from_date {
            return Err(bad(
                Param::To,
                format!(
                    "`{to_date}` must be after the start day `{from_date}` (the end day is excluded)"
                ),
            ));
        }
        let group_by = GroupBy::parse(group_by).map_err(|m| bad(Param::GroupBy, m))?;
        let format = Format::parse(format).map_err(|m| bad(Param::Format, m))?;
        let midnight = |d: Date, p| {
            d.to_zoned(tz.clone())
                .map(|z| z.timestamp())
                .map_err(|e| bad(p, format!("`{d}` has no local midnight in {tz_name}: {e}")))
        };
        Ok(ReportQuery {
            from: midnight(from_date, Param::From)?,
            to: midnight(to_date, Param::To)?,
            from_date,
            to_date,
            group_by,
            format,
            tz: tz.clone(),
            tz_name: tz_name.to_string(),
            wide: false,
        })
    }
}

/// The shortcut names `batchcost report RANGE` takes, for help and error messages.
pub const RANGE_NAMES: &str =
    "today, yesterday, this-week, last-week, this-month, last-month, last-N-days (or Nd)";

/// `[from, to)` in local days for a named range at `now` in `tz`: `today`, `yesterday`,
/// `this-week` and `last-week` (weeks begin on Monday), `this-month`, `last-month`, and
/// `last-N-days` or `Nd` (N days ending with today). "Today" is the local date of `now`,
/// so at 00:30 in Seoul it is already the new day.
pub fn named_range(name: &str, now: Timestamp, tz: &TimeZone) -> Result<(Date, Date), String> {
    let today = now.to_zoned(tz.clone()).date();
    let day = |d: Date, n: i64| d.checked_add(jiff::Span::new().days(n)).map_err(|e| e.to_string());
    let monday = day(today, -i64::from(today.weekday().to_monday_zero_offset()))?;
    let month = today.first_of_month();
    let next_month = month.checked_add(jiff::Span::new().months(1)).map_err(|e| e.to_string())?;
    let last_month = month.checked_sub(jiff::Span::new().months(1)).map_err(|e| e.to_string())?;
    let name = name.trim();
    Ok(match name {
        "today" => (today, day(today, 1)?),
        "yesterday" => (day(today, -1)?, today),
        "this-week" => (monday, day(monday, 7)?),
        "last-week" => (day(monday, -7)?, monday),
        "this-month" => (month, next_month),
        "last-month" => (last_month, month),
        other => {
            let n = other
                .strip_prefix("last-")
                .and_then(|r| r.strip_suffix("-days"))
                .or_else(|| other.strip_suffix('d'))
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| (1..=3660).contains(n))
                .ok_or_else(|| {
                    format!(
                        "unknown range `{}`, expected {RANGE_NAMES} (N from 1 to 3660)",
                        other.chars().take(40).collect::<String>()
                    )
                })?;
            (day(today, 1 - n)?, day(today, 1)?)
        }
    })
}

fn parse_date(s: &str) -> Result<Date, String> {
    let s = s.trim();
    let shown: String = s.chars().take(40).collect();
    if s.len() != 10 {
        return Err(format!("expected a date YYYY-MM-DD, got `{shown}`"));
    }
    s.parse::<Date>().map_err(|e| format!("expected a date YYYY-MM-DD, got `{shown}` ({e})"))
}

/// The local day of an instant, computed once per day rather than once per row: rows come
/// in submission order, so the day changes rarely.
pub struct DayOf {
    tz: TimeZone,
    current: Option<(Window, Date)>,
}

impl DayOf {
    pub fn new(tz: TimeZone) -> Self {
        DayOf { tz, current: None }
    }

    /// Uses the same windows as daily budgets, so a report day and a budget day are one.
    pub fn date(&mut self, at: Timestamp) -> Date {
        if let Some((w, d)) = self.current {
            if w.start <= at && at < w.end {
                return d;
            }
        }
        let w = window(Period::Day, &self.tz, at);
        let d = at.to_zoned(self.tz.clone()).date();
        self.current = Some((w, d));
        d
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seoul() -> TimeZone {
        TimeZone::get("Asia/Seoul").unwrap()
    }

    #[test]
    fn dates_are_local_midnights_and_end_is_excluded() {
        let q =
            ReportQuery::parse("2026-03-01", "2026-04-01", "day", "csv", &seoul(), "Asia/Seoul")
                .unwrap();
        assert_eq!(q.from, "2026-02-28T15:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(q.to, "2026-03-31T15:00:00Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let tz = seoul();
        let p = |f, t, g, fm| ReportQuery::parse(f, t, g, fm, &tz, "Asia/Seoul").unwrap_err();
        let e = p("2026-3-1", "2026-04-01", "day", "csv");
        assert_eq!(e.param, Param::From);
        assert!(e.flag().starts_with("--from: expected a date YYYY-MM-DD"), "{}", e.flag());
        assert_eq!(p("2026-03-01", "2026-02-30", "day", "csv").param, Param::To);
        let e = p("2026-03-02", "2026-03-02", "day", "csv");
        assert_eq!(e.param, Param::To);
        assert!(e.message.contains("must be after"), "{}", e.message);
        let e = p("2026-03-01", "2026-03-02", "day,week", "csv");
        assert_eq!(
            e.flag(),
            "--group-by: unknown dimension `week`, expected a comma-separated list of day, project, provider, model"
        );
        assert_eq!(e.query().split(':').next(), Some("group_by"));
        assert_eq!(p("2026-03-01", "2026-03-02", "day,day", "csv").param, Param::GroupBy);
        assert_eq!(p("2026-03-01", "2026-03-02", "day", "xlsx").param, Param::Format);
    }

    #[test]
    fn any_subset_of_dimensions() {
        assert_eq!(GroupBy::parse("").unwrap(), GroupBy::default());
        assert_eq!(GroupBy::parse("none").unwrap(), GroupBy::default());
        let g = GroupBy::parse("model, provider").unwrap();
        assert_eq!(g.dimensions(), vec![Dimension::Provider, Dimension::Model]);
        let all = GroupBy::parse("day,project,provider,model").unwrap();
        assert_eq!(all.dimensions(), Dimension::ALL.to_vec());
    }

    #[test]
    fn named_ranges_follow_the_local_day() {
        let tz = seoul();
        let d = |s: &str| s.parse::<Date>().unwrap();
        // 23:59:59 KST on Sunday 31 May 2026 is 14:59:59 UTC; one second later it is
        // Monday 1 June in Seoul (still 31 May in UTC).
        let before: Timestamp = "2026-05-31T14:59:59Z".parse().unwrap();
        let after: Timestamp = "2026-05-31T15:00:00Z".parse().unwrap();
        let r = |name, at| named_range(name, at, &tz).unwrap();
        assert_eq!(r("today", before), (d("2026-05-31"), d("2026-06-01")));
        assert_eq!(r("today", after), (d("2026-06-01"), d("2026-06-02")));
        assert_eq!(r("yesterday", after), (d("2026-05-31"), d("2026-06-01")));
        assert_eq!(r("this-week", before), (d("2026-05-25"), d("2026-06-01")));
        assert_eq!(r("this-week", after), (d("2026-06-01"), d("2026-06-08")));
        assert_eq!(r("last-week", after), (d("2026-05-25"), d("2026-06-01")));
        assert_eq!(r("this-month", before), (d("2026-05-01"), d("2026-06-01")));
        assert_eq!(r("this-month", after), (d("2026-06-01"), d("2026-07-01")));
        assert_eq!(r("last-month", after), (d("2026-05-01"), d("2026-06-01")));
        assert_eq!(r("last-7-days", after), (d("2026-05-26"), d("2026-06-02")));
        assert_eq!(r("7d", after), r("last-7-days", after));
        assert_eq!(r("1d", before), r("today", before));
        let e = named_range("fortnight", after, &tz).unwrap_err();
        assert!(e.contains("unknown range `fortnight`, expected today"), "{e}");
        assert!(named_range("last-0-days", after, &tz).is_err());
    }

    #[test]
    fn local_day_follows_the_zone_not_utc() {
        let mut d = DayOf::new(seoul());
        // 23:50 KST on 31 Jan is 14:50 UTC; 00:30 KST on 1 Feb is 15:30 UTC on 31 Jan.
        let late: Timestamp = "2026-01-31T14:50:00Z".parse().unwrap();
        let after: Timestamp = "2026-01-31T15:30:00Z".parse().unwrap();
        assert_eq!(d.date(late), jiff::civil::date(2026, 1, 31));
        assert_eq!(d.date(after), jiff::civil::date(2026, 2, 1));
        assert_eq!(d.date(late), jiff::civil::date(2026, 1, 31));
    }
}
