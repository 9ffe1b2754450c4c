//! `batchcost report today` and friends, with an injected clock standing on each side of
//! local midnight in Seoul: the range follows the configured zone, not UTC. Also the
//! narrow default table, the provider column and the money still reserved.

mod report_support;

use batchcost::clock::{Clock, ManualClock};
use batchcost::ledger::{Admit, Hold, NewSubmission};
use batchcost::money::Money;
use batchcost::report::ReportArgs;
use batchcost::report::inflight::{open_batches, section};
use clap::Parser;
use report_support::*;

/// Report arguments as typed on the command line.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    report: ReportArgs,
}

fn args(line: &[&str]) -> ReportArgs {
    Cli::parse_from(std::iter::once("report").chain(line.iter().copied())).report
}

/// Two settled batches, 20 minutes apart across midnight in Seoul (Sunday 31 May to
/// Monday 1 June 2026), and one still in flight submitted at 23:55.
async fn around_midnight() -> Fixture {
    let f = Fixture::new(vec![budget("all-daily", None, batchcost::config::Period::Day)]).await;
    for (id, at, end) in [
        ("msgbatch_late", "2026-05-31T14:50:00Z", "2026-05-31T15:30:00Z"),
        ("msgbatch_early", "2026-05-31T15:10:00Z", "2026-05-31T15:40:00Z"),
    ] {
        f.settle(Batch {
            id,
            project: "alpha",
            submitted: at,
            ended: end,
            models: vec![("claude-haiku-4-5", vec![usage(1, 0, false)])],
            errored: 0,
        })
        .await;
    }
    let at = ts("2026-05-31T14:55:00Z");
    let sub = NewSubmission {
        sub_id: "sub_open".into(),
        project: "beta".into(),
        provider: "anthropic".into(),
        submitted_at: at,
        request_count: 7,
        body_hash: "hash_open".into(),
        custom_id_fingerprint: 0,
        hold: Hold { usd: Money::parse_usd("1.25").unwrap(), input_tokens: 0, output_tokens: 0 },
        windows: f.windows("beta", at),
        estimate_json: "{}".into(),
        dedupe_since: at,
        lease: None,
        bounds: Vec::new(),
    };
    assert!(matches!(f.ledger.admit(&sub).await.unwrap(), Admit::Admitted));
    assert!(f.ledger.mark_submitted("sub_open", "msgbatch_open", at).await.unwrap());
    f
}

async fn run(
    f: &Fixture,
    clock: &dyn Clock,
    line: &[&str],
) -> (String, batchcost::report::ReportQuery) {
    let q = match args(line).query(clock.now(), &f.tz, TZ) {
        Ok(q) => q,
        Err(e) => panic!("{e}"),
    };
    (f.report_chunks(&q).await.0, q)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shortcuts_cross_local_midnight_with_the_zone() {
    let f = around_midnight().await;
    let clock = ManualClock::new(ts("2026-05-31T14:59:59Z")); // 23:59:59 Sunday in Seoul
    fn csv<'a>(line: &[&'a str]) -> Vec<&'a str> {
        [line, &["--format", "csv"]].concat()
    }
    let ids =
        |text: &str| csv_maps(text).iter().map(|r| r["date"].clone().unwrap()).collect::<Vec<_>>();

    let (today, q) = run(&f, &clock, &csv(&["today"])).await;
    assert_eq!(
        (q.from_date.to_string(), q.to_date.to_string()),
        ("2026-05-31".into(), "2026-06-01".into())
    );
    assert_eq!(ids(&today), ["2026-05-31"], "only the 23:50 batch: {today}");
    let (week, _) = run(&f, &clock, &csv(&["this-week"])).await;
    assert_eq!(ids(&week), ["2026-05-31"], "the week of Monday 25 May: {week}");

    clock.set(ts("2026-05-31T15:00:01Z")); // 00:00:01 Monday in Seoul, still 31 May in UTC
    let (today, _) = run(&f, &clock, &csv(&["today"])).await;
    assert_eq!(ids(&today), ["2026-06-01"], "only the 00:10 batch: {today}");
    let (yesterday, _) = run(&f, &clock, &csv(&["yesterday"])).await;
    assert_eq!(ids(&yesterday), ["2026-05-31"], "{yesterday}");
    let (week, _) = run(&f, &clock, &csv(&["this-week"])).await;
    assert_eq!(ids(&week), ["2026-06-01"], "a new week began at local midnight: {week}");
    let (month, _) = run(&f, &clock, &csv(&["this-month"])).await;
    assert_eq!(ids(&month), ["2026-06-01"], "June began in Seoul: {month}");
    let (last, _) = run(&f, &clock, &csv(&["last-2-days"])).await;
    assert_eq!(ids(&last), ["2026-05-31", "2026-06-01"], "{last}");
    let (default, q) = run(&f, &clock, &csv(&[])).await;
    assert_eq!(q.from_date.to_string(), "2026-06-01", "no range: this month");
    assert_eq!(ids(&default), ["2026-06-01"]);
    let (from_only, q) = run(&f, &clock, &csv(&["--from", "2026-05-31"])).await;
    assert_eq!(q.to_date.to_string(), "2026-06-02", "--from alone runs through today");
    assert_eq!(ids(&from_only).len(), 2);
    let bad = args(&["fortnight"]).query(clock.now(), &f.tz, TZ).unwrap_err().to_string();
    assert!(bad.contains("unknown range `fortnight`, expected today, yesterday"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_table_is_narrow_and_names_the_provider_and_what_is_reserved() {
    let f = around_midnight().await;
    let clock = ManualClock::new(ts("2026-05-31T15:00:01Z"));
    let (narrow, q) = run(&f, &clock, &["last-2-days"]).await;
    assert!(narrow.lines().skip(1).all(|l| l.len() <= 100), "fits 100 columns:\n{narrow}");
    assert!(narrow.lines().nth(1).unwrap().contains("cost_usd"), "{narrow}");
    assert!(!narrow.contains("cache_read"), "token columns only with --wide: {narrow}");
    let (wide, _) = run(&f, &clock, &["last-2-days", "--wide"]).await;
    let head = wide.lines().nth(1).unwrap();
    for col in ["provider", "input", "cache_read", "list_usd", "saved_usd"] {
        assert!(head.contains(col), "{col} in --wide: {head}");
    }
    let (by_project, _) = run(&f, &clock, &["last-2-days", "--group-by", "project"]).await;
    assert!(by_project.lines().nth(1).unwrap().contains("provider"), "{by_project}");
    assert!(by_project.lines().any(|l| l.starts_with("alpha") && l.contains("anthropic")));
    for (group_by, format) in [("project", "csv"), ("", "csv"), ("day", "json")] {
        let (text, _) =
            run(&f, &clock, &["last-2-days", "--group-by", group_by, "--format", format]).await;
        assert!(
            text.contains(if format == "csv" {
                ",anthropic,"
            } else {
                r#""provider":"anthropic""#
            }),
            "{group_by}: {text}"
        );
    }
    // The CLI closes the table with what is reserved: the 23:55 batch still in flight.
    let open = open_batches(f.ledger.as_ref()).await.unwrap();
    let closing = section(&open, &q);
    let line =
        closing.lines().find(|l| l.starts_with("beta")).unwrap_or_else(|| panic!("{closing}"));
    assert!(line.contains("anthropic") && line.contains(" 7 ") && line.ends_with("1.25"), "{line}");
    let (_, today) = run(&f, &clock, &["today"]).await;
    assert!(section(&open, &today).contains("no batches in flight"), "submitted yesterday");
}
