//! Reconciliation through the real HTTP path (gateway + in-process simulator): for one
//! period, `GET /api/reports/spend` totals (CSV, JSON, FOCUS), the `/metrics` cost counters,
//! the budgets' spent amounts and the cost this test computes itself from the result lines
//! all agree, exactly. And a batch submitted at 23:50 in Seoul and settled after midnight
//! counts on its submission day in reports and budgets alike.

// Both support modules carry the storage helper; two copies of it are harmless.
#![allow(clippy::duplicate_mod)]

mod common;
mod report_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcost::clock::ManualClock;
use batchcost::config::Period;
use batchcost::money::Money;
use batchcost::pricing::{PriceTable, TokenUsage};
use batchcost::providers::anthropic::wire::{BatchResult, ResultLine};
use common::{As, Harness, batch_body, budget, harness, metric, sim_config};
use jiff::{SignedDuration, Timestamp};
use report_support::{csv_maps, money};
use serde_json::{Value, json};

async fn get(h: &Harness, path: &str) -> (u16, String) {
    let r = h.get(path, As::Admin).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Moves the gateway's clock on (so the tracker's next polls come due) until every batch
/// is settled; bounded.
async fn settle_all(h: &Harness, clock: &ManualClock, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in ids {
        loop {
            let v = h.admin(&format!("/api/batches/{id}")).await;
            if v["status"] == "settled" {
                break;
            }
            assert!(Instant::now() < deadline, "batch {id} did not settle: {v}");
            clock.advance(SignedDuration::from_secs(1));
            h.gw.app.wake_tracker.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The cost of a batch computed here, from its result lines fetched through the gateway.
async fn cost_from_results(h: &Harness, table: &PriceTable, key: &str, id: &str) -> Money {
    let rec = h.admin(&format!("/api/batches/{id}")).await;
    let submitted: Timestamp = rec["submitted_at"].as_str().unwrap().parse().unwrap();
    let text = h.results(key, id).await;
    let mut cost = Money::ZERO;
    for line in text.lines() {
        let l: ResultLine = serde_json::from_str(line).unwrap();
        if let BatchResult::Succeeded { message } = l.result {
            let price = table.resolve(&message.model, submitted).unwrap();
            cost += price.cost(&TokenUsage::from_anthropic(&message.usage)).cost;
        }
    }
    cost
}

fn with_params(mut body: Value, extra: Value) -> Value {
    for r in body["requests"].as_array_mut().unwrap() {
        for (k, v) in extra.as_object().unwrap() {
            r["params"][k] = v.clone();
        }
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_metrics_budgets_and_result_lines_agree_exactly() {
    // Noon in Seoul: the clock moves a few minutes at most, inside one day.
    let clock = Arc::new(ManualClock::new("2026-03-10T03:00:00Z".parse().unwrap()));
    let budgets = vec![
        budget("all-daily", None, Period::Day, Money::from_usd(1000)),
        budget("alpha-monthly", Some("alpha"), Period::Month, Money::from_usd(1000)),
        budget("beta-daily", Some("beta"), Period::Day, Money::from_usd(1000)),
    ];
    let mut sim = sim_config();
    sim.errored_fraction = 0.1;
    let h = harness(budgets, clock.clone(), sim).await;
    let search =
        json!({"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]});
    let submissions = [
        ("alpha-key", batch_body("a1", "claude-sonnet-4-6", 20, 400)),
        ("alpha-key", with_params(batch_body("a2", "claude-haiku-4-5", 12, 300), search)),
        (
            "beta-key",
            with_params(
                batch_body("b1", "claude-opus-4-6", 8, 500),
                json!({"inference_geo": "us"}),
            ),
        ),
        ("beta-key", batch_body("b2", "claude-sonnet-4-6", 6, 200)),
    ];
    let mut ids = Vec::new();
    for (key, body) in &submissions {
        let (status, v, _) = h.submit(key, body).await;
        assert_eq!(status, 200, "{v}");
        ids.push((key.to_string(), v["id"].as_str().unwrap().to_string()));
    }
    let all: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    settle_all(&h, &clock, &all).await;

    let table =
        PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
            .unwrap();
    let mut computed: BTreeMap<String, Money> = BTreeMap::new();
    for (key, id) in &ids {
        let project = key.trim_end_matches("-key").to_string();
        *computed.entry(project).or_default() += cost_from_results(&h, &table, key, id).await;
    }
    let total: Money = computed.values().copied().sum();
    assert!(computed.values().all(|c| *c > Money::ZERO));

    let range = "from=2026-03-10&to=2026-03-11";
    let (status, csv) =
        get(&h, &format!("/api/reports/spend?{range}&group_by=project&format=csv")).await;
    assert_eq!(status, 200, "{csv}");
    let rows = csv_maps(&csv);
    let by_project: BTreeMap<String, Money> =
        rows.iter().map(|r| (r["project"].clone().unwrap(), money(&r["cost_usd"]))).collect();
    assert_eq!(by_project, computed, "report CSV vs result lines");

    let (status, body) = get(&h, &format!("/api/reports/spend?{range}")).await;
    assert_eq!(status, 200);
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["group_by"], json!(["day", "project", "model"]), "JSON by default");
    assert_eq!(report["totals"]["cost_usd"], total.usd_exact());
    assert_eq!(report["totals"]["batches"], 4);
    let errored: u64 = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests_errored"].as_u64().unwrap())
        .sum();
    assert!(errored > 0, "the simulator's errored results are counted");

    let (_, focus) = get(&h, &format!("/api/reports/spend?{range}&format=focus")).await;
    let lines = csv_maps(&focus);
    assert_eq!(lines.iter().map(|l| money(&l["BilledCost"])).sum::<Money>(), total);
    assert!(
        lines.iter().any(|l| l["SkuId"].as_deref().is_some_and(|s| s.ends_with("/web_search")))
    );
    assert!(
        lines.iter().any(|l| l["ChargeCategory"].as_deref() == Some("Adjustment")),
        "US uplift"
    );

    let m = h.metrics().await;
    for (project, cost) in &computed {
        let counted = metric(&m, "batchcost_cost_usd_total", &[("project", project)]);
        assert!(
            (counted - cost.to_f64_usd()).abs() < 1e-9,
            "{project}: metrics {counted} vs {cost}"
        );
    }
    assert!((metric(&m, "batchcost_cost_usd_total", &[]) - total.to_f64_usd()).abs() < 1e-9);

    assert_eq!(h.budget("all-daily").await["spent_usd"], total.usd_exact());
    assert_eq!(h.budget("alpha-monthly").await["spent_usd"], computed["alpha"].usd_exact());
    assert_eq!(h.budget("beta-daily").await["spent_usd"], computed["beta"].usd_exact());

    // The route is the admin's, and bad parameters are named.
    let r = h.http.get(format!("{}/api/reports/spend?{range}", h.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (status, body) =
        get(&h, "/api/reports/spend?from=2026-03-10&to=2026-03-11&group_by=week").await;
    assert_eq!(status, 400);
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(
        e["error"]["message"].as_str().unwrap().starts_with("group_by: unknown dimension"),
        "{e}"
    );
    let (status, body) = get(&h, "/api/reports/spend?to=2026-03-11").await;
    assert_eq!(status, 400);
    assert!(body.contains("from: required"), "{body}");
    h.stop().await;
}

/// Submits at `submit` (23:50 KST), lets the batch end and settle at `settle` (00:30 KST
/// the next day), then checks the cost sits on `day` (not `next`) in the report and in the
/// window of a `period` budget containing the submission, and not in the one after.
async fn late_batch(
    period: Period,
    submit: &str,
    settle: &str,
    day: &str,
    next: &str,
    after: &str,
) {
    let clock = Arc::new(ManualClock::new(submit.parse().unwrap()));
    let budgets = vec![budget("alpha", Some("alpha"), period, Money::from_usd(1000))];
    // Simulated time stands still until the test moves it: the batch cannot end early.
    let mut sim = sim_config();
    sim.time_scale = 0.0;
    let h = harness(budgets, clock.clone(), sim).await;
    let (status, v, _) =
        h.submit("alpha-key", &batch_body("late", "claude-haiku-4-5", 6, 300)).await;
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    clock.set(settle.parse().unwrap());
    h.sim.advance(SignedDuration::from_hours(1));
    let rec = h.wait_settled(&id).await;
    let settled: Timestamp = rec["settled_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(settled, settle.parse::<Timestamp>().unwrap());
    let cost = rec["cost_usd"].as_str().unwrap().to_string();
    assert_ne!(cost, "0");

    let report = |from: String, to: String| {
        let h = &h;
        async move {
            let (status, body) =
                get(h, &format!("/api/reports/spend?from={from}&to={to}&group_by=day")).await;
            assert_eq!(status, 200, "{body}");
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };
    let first = report(day.into(), next.into()).await;
    assert_eq!(first["rows"][0]["date"], day);
    assert_eq!(first["totals"]["cost_usd"], cost);
    let second = report(next.into(), after.into()).await;
    assert_eq!(second["totals"]["cost_usd"], "0");
    // The budget: the window current now (after midnight) has spent nothing; the
    // submission's window has it all.
    assert_eq!(h.budget("alpha").await["spent_usd"], "0");
    clock.set(submit.parse().unwrap());
    assert_eq!(h.budget("alpha").await["spent_usd"], cost);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_submitted_at_2350_kst_and_settled_after_midnight_counts_on_its_submission_day() {
    // 23:50 KST on 10 March; settled 00:30 KST on 11 March.
    let (submit, settle) = ("2026-03-10T14:50:00Z", "2026-03-10T15:30:00Z");
    late_batch(Period::Day, submit, settle, "2026-03-10", "2026-03-11", "2026-03-12").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_submitted_on_the_last_evening_of_a_month_counts_in_that_month() {
    // 23:50 KST on 31 March; settled 00:30 KST on 1 April (still 31 March in UTC).
    let (submit, settle) = ("2026-03-31T14:50:00Z", "2026-03-31T15:30:00Z");
    late_batch(Period::Month, submit, settle, "2026-03-31", "2026-04-01", "2026-05-01").await;
}
