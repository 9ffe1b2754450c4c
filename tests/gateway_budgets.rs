//! Budget admission through the real HTTP path: refusals never reach the upstream, windows
//! reset at local midnight (day, week, month, quarter; across DST changes), and concurrency
//! never overshoots a limit.

mod common;

use std::sync::Arc;

use batchcost::clock::{ManualClock, SystemClock};
use batchcost::config::{Period, WeekStart};
use batchcost::estimate::EstimateOptions;
use batchcost::money::Money;
use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::estimate::estimate_bytes;
use common::*;
use jiff::{SignedDuration, Timestamp};

fn worst_case(body: &serde_json::Value) -> Money {
    let table =
        PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
            .unwrap();
    let bytes = serde_json::to_vec(body).unwrap();
    estimate_bytes(&bytes, &table, &EstimateOptions::new(Timestamp::now(), 0.5)).unwrap().worst.cost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_does_not_fit_gets_429_and_the_upstream_sees_no_create() {
    let h = harness(
        vec![budget("alpha-daily", Some("alpha"), Period::Day, Money::parse_usd("0.01").unwrap())],
        Arc::new(SystemClock),
        sim_config(),
    )
    .await;
    let body = batch_body("big", "claude-sonnet-4-6", 50, 4_000);
    let (status, v, headers) = h.submit("alpha-key", &body).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "budget_exceeded_error");
    assert_eq!(v["error"]["budget"]["name"], "alpha-daily");
    assert_eq!(v["error"]["budget"]["limit_usd"], "0.01");
    assert_eq!(v["error"]["budget"]["requested_usd"], worst_case(&body).usd_exact());
    assert_eq!(headers["x-should-retry"], "false");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    assert_eq!(h.sim.stats().create_attempts, 0, "a refused batch must not reach the upstream");
    let b = h.budget("alpha-daily").await;
    assert_eq!(b["reserved_usd"], "0");
    let m = h.metrics().await;
    assert_eq!(
        metric(
            &m,
            "batchcost_submissions_rejected_total",
            &[("project", "alpha"), ("reason", "budget_exceeded")]
        ),
        1.0
    );
    // The other project has no such budget and goes through.
    let (status, v, _) = h.submit("beta-key", &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(h.sim.stats().creates_accepted, 1);
    h.stop().await;
}

/// Fills a window exactly, checks the next batch is refused, moves the clock to `next`, and
/// checks the same batch is then admitted.
async fn window_resets_at(period: Period, start: &str, next: &str) {
    window_resets_in("Asia/Seoul", WeekStart::Monday, period, start, next).await;
}

/// [`window_resets_at`] in time zone `tz`, weeks beginning on `week_starts`.
async fn window_resets_in(
    tz: &str,
    week_starts: WeekStart,
    period: Period,
    start: &str,
    next: &str,
) {
    // Same-length tags: the worst case depends on the bytes sent.
    let one = worst_case(&batch_body("w0", "claude-haiku-4-5", 5, 1_000));
    let clock = Arc::new(ManualClock::new(start.parse().unwrap()));
    let limit = Money::from_picos(one.picos() * 2);
    let mut b = budget("alpha", Some("alpha"), period, limit);
    b.policy.week_starts = week_starts;
    let h = harness_with(vec![b], clock.clone(), sim_config(), |s| {
        s.timezone = jiff::tz::TimeZone::get(tz).unwrap();
        s.timezone_name = tz.into();
    })
    .await;
    for tag in ["w1", "w2"] {
        let (status, v, _) =
            h.submit("alpha-key", &batch_body(tag, "claude-haiku-4-5", 5, 1_000)).await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, v, _) =
        h.submit("alpha-key", &batch_body("w3", "claude-haiku-4-5", 5, 1_000)).await;
    assert_eq!(status, 429, "{v}");
    let resets: Timestamp = v["error"]["budget"]["resets_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(resets, next.parse::<Timestamp>().unwrap());
    clock.set(resets.checked_sub(SignedDuration::from_secs(1)).unwrap());
    let (status, _, _) =
        h.submit("alpha-key", &batch_body("w4", "claude-haiku-4-5", 5, 1_000)).await;
    assert_eq!(status, 429, "one second before the reset the window is still full");
    clock.set(resets);
    let (status, v, _) =
        h.submit("alpha-key", &batch_body("w5", "claude-haiku-4-5", 5, 1_000)).await;
    assert_eq!(status, 200, "{v}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_windows_reset_at_seoul_midnight() {
    // 23:50 KST on 10 March is 14:50 UTC; the day ends at 15:00 UTC.
    window_resets_at(Period::Day, "2026-03-10T14:50:00Z", "2026-03-10T15:00:00Z").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_windows_reset_at_the_first_local_midnight_of_the_month() {
    // 31 March 20:00 KST; April begins at 31 March 15:00 UTC.
    window_resets_at(Period::Month, "2026-03-31T11:00:00Z", "2026-03-31T15:00:00Z").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weekly_windows_reset_at_the_configured_weekday_after_a_dst_change() {
    // New York springs forward on Sunday 8 March 2026. Saturday 14 March 23:30 EDT; a week
    // starting on Sunday resets at 00:00 EDT on the 15th, 04:00 UTC (not 05:00 as in EST).
    window_resets_in(
        "America/New_York",
        WeekStart::Sunday,
        Period::Week,
        "2026-03-15T03:30:00Z",
        "2026-03-15T04:00:00Z",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarterly_windows_reset_at_local_midnight_after_a_dst_change() {
    // Berlin springs forward on 29 March 2026: Q2 begins at 00:00 CEST on 1 April, which is
    // 22:00 UTC on 31 March (Q1 began at 23:00 UTC, in CET).
    window_resets_in(
        "Europe/Berlin",
        WeekStart::Monday,
        Period::Quarter,
        "2026-03-31T21:00:00Z",
        "2026-03-31T22:00:00Z",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_submissions_against_room_for_ten_accept_exactly_ten() {
    let one = worst_case(&batch_body("c000", "claude-haiku-4-5", 3, 500));
    let limit = Money::from_picos(one.picos() * 10);
    // A still clock: nothing settles mid-test, so every hold stays at its worst case.
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let h = harness(
        vec![budget("alpha-daily", Some("alpha"), Period::Day, limit)],
        clock,
        sim_config(),
    )
    .await;
    let h = Arc::new(h);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let body = batch_body(&format!("c{i:03}"), "claude-haiku-4-5", 3, 500);
            h.submit("alpha-key", &body).await.0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 90);
    let b = h.budget("alpha-daily").await;
    let used = Money::parse_usd(b["spent_usd"].as_str().unwrap()).unwrap()
        + Money::parse_usd(b["reserved_usd"].as_str().unwrap()).unwrap();
    assert!(used <= limit, "reserved + spent {used} above the limit {limit}");
    assert_eq!(h.sim.stats().creates_accepted, 10);
    Arc::into_inner(h).unwrap().stop().await;
}
