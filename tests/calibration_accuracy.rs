//! How accurate calibrated holds are on the demo's traffic (`batchcost demo`'s four sample
//! batches, resubmitted round after round): how often a batch's actual cost exceeded its
//! calibrated hold, and by how much. Prints the figures; asserts the calibration holds
//! the 95th-percentile promise with room (at most 10 % of batches above their hold) and
//! that no batch ever exceeded its worst case.
//! `cargo test --test calibration_accuracy -- --nocapture` prints the figures (~15 s).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcost::clock::ManualClock;
use batchcost::config::{HoldPolicy, Period, Secret};
use batchcost::estimate::EstimateOptions;
use batchcost::money::Money;
use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::estimate::estimate_bytes;
use common::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

const ROUNDS: usize = 15;
const PROJECTS: [&str; 3] = ["support", "search", "evals"];

fn usd(v: &Value) -> Money {
    Money::parse_usd(v.as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibrated_holds_on_the_demo_traffic() {
    let table =
        PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
            .unwrap();
    let budgets = PROJECTS
        .iter()
        .map(|p| {
            let mut b =
                budget(&format!("{p}-cal"), Some(p), Period::Month, Money::from_usd(1_000_000));
            b.policy.hold = HoldPolicy::Calibrated;
            b
        })
        .collect();
    let clock = Arc::new(ManualClock::new("2026-05-04T01:00:00Z".parse().unwrap()));
    let h = harness_with(budgets, clock.clone(), sim_config(), |s| {
        s.projects = PROJECTS
            .iter()
            .map(|p| (p.to_string(), vec![Secret::new(format!("{p}-key"))]))
            .collect();
    })
    .await;
    // (stream title) -> [(worst, hold, actual)] after the warm-up rounds
    let mut seen: BTreeMap<String, Vec<(Money, Money, Money)>> = BTreeMap::new();
    for round in 0..ROUNDS {
        for sample in batchcost::demo::samples::batches() {
            let mut body = sample.body.clone();
            for r in body["requests"].as_array_mut().unwrap() {
                let id = format!("{}-r{round}", r["custom_id"].as_str().unwrap());
                r["custom_id"] = Value::from(id);
            }
            let bytes = serde_json::to_vec(&body).unwrap();
            let worst =
                estimate_bytes(&bytes, &table, &EstimateOptions::new(Timestamp::now(), 0.5))
                    .unwrap()
                    .worst
                    .cost;
            let name = format!("{}-cal", sample.project);
            let before = usd(&h.budget(&name).await["reserved_usd"]);
            let (s, v, _) = h.submit(&format!("{}-key", sample.project), &body).await;
            assert_eq!(s, 200, "{v}");
            let hold = usd(&h.budget(&name).await["reserved_usd"]) - before;
            let id = v["id"].as_str().unwrap().to_string();
            let deadline = Instant::now() + Duration::from_secs(120);
            let rec = loop {
                let rec = h.admin(&format!("/api/batches/{id}")).await;
                if rec["status"] == "settled" {
                    break rec;
                }
                assert!(Instant::now() < deadline, "{rec}");
                clock.advance(SignedDuration::from_secs(1));
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let actual = usd(&rec["cost_usd"]);
            assert!(actual <= worst, "{}: actual above the worst case", sample.title);
            if round >= batchcost::holds::MIN_SAMPLES {
                seen.entry(sample.title.to_string()).or_default().push((worst, hold, actual));
            } else {
                assert_eq!(hold, worst, "{}: the worst case until enough settled", sample.title);
            }
        }
    }
    let (mut n, mut over) = (0, 0);
    for (title, rows) in &seen {
        let ratio = |a: Money, b: Money| a.picos() as f64 / b.picos() as f64;
        let exceeded: Vec<f64> =
            rows.iter().filter(|r| r.2 > r.1).map(|r| ratio(r.2 - r.1, r.1) * 100.0).collect();
        let mean = |f: &dyn Fn(&(Money, Money, Money)) -> f64| {
            rows.iter().map(f).sum::<f64>() / rows.len() as f64
        };
        eprintln!(
            "{title}: {} batches; hold/worst {:.3}; actual/worst {:.3}; actual/hold {:.3}; \
             actual > hold in {} (max excess {:.2}% of the hold)",
            rows.len(),
            mean(&|r| ratio(r.1, r.0)),
            mean(&|r| ratio(r.2, r.0)),
            mean(&|r| ratio(r.2, r.1)),
            exceeded.len(),
            exceeded.iter().cloned().fold(0.0, f64::max),
        );
        n += rows.len();
        over += exceeded.len();
    }
    eprintln!("overall: actual above the calibrated hold in {over} of {n} batches");
    assert!(over * 10 <= n, "{over} of {n} batches cost more than their calibrated hold");
    h.stop().await;
}
