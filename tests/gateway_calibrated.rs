//! Calibrated holds on simulated traffic whose output lengths vary (the simulator draws
//! each answer's length: most are short, 5 % run to `max_tokens`): after a few settled
//! batches a calibrated budget holds less than the worst case and admits batches the
//! worst-case budget refuses; it reports exactly what it risks (worst case minus hold of
//! each batch it holds), and what settles never overshoots the limit by more than that.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcost::clock::ManualClock;
use batchcost::config::{HoldPolicy, Period};
use batchcost::estimate::EstimateOptions;
use batchcost::money::Money;
use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::estimate::estimate_bytes;
use common::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

fn worst_case(body: &Value) -> Money {
    let table =
        PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
            .unwrap();
    let bytes = serde_json::to_vec(body).unwrap();
    estimate_bytes(&bytes, &table, &EstimateOptions::new(Timestamp::now(), 0.5)).unwrap().worst.cost
}

fn usd(v: &Value) -> Money {
    Money::parse_usd(v.as_str().unwrap()).unwrap()
}

/// Advances the gateway's clock until the batch is settled (the simulator runs on real
/// time, the tracker's schedule on the injected clock).
async fn settle(h: &Harness, clock: &ManualClock, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = h.admin(&format!("/api/batches/{id}")).await;
        if v["status"] == "settled" {
            return v;
        }
        assert!(Instant::now() < deadline, "batch {id} did not settle: {v}");
        clock.advance(SignedDuration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calibrated_budget_admits_more_and_never_overshoots_more_than_it_reported() {
    let test_body =
        |p: &str, i: usize| batch_body(&format!("{p}t{i:02}"), "claude-haiku-4-5", 20, 2_000);
    let worst = worst_case(&test_body("a", 0));
    let limit = Money::from_picos(worst.picos() * 3);
    let mut cal = budget("alpha-daily", Some("alpha"), Period::Day, limit);
    cal.policy.hold = HoldPolicy::Calibrated;
    let fixed = budget("beta-daily", Some("beta"), Period::Day, limit);
    // 10:00 in Seoul; the next day begins at 15:00 UTC.
    let clock = Arc::new(ManualClock::new("2026-05-04T01:00:00Z".parse().unwrap()));
    let h = harness(vec![cal, fixed], clock.clone(), sim_config()).await;

    // Day 1: each project settles six smaller batches of the same model and max_tokens.
    for i in 0..6 {
        for (key, p) in [("alpha-key", "a"), ("beta-key", "b")] {
            let body = batch_body(&format!("{p}w{i:02}"), "claude-haiku-4-5", 10, 2_000);
            let (s, v, _) = h.submit(key, &body).await;
            assert_eq!(s, 200, "{v}");
            if i == 0 && p == "a" {
                // Nothing settled yet: the calibrated budget holds the worst case.
                assert_eq!(usd(&h.budget("alpha-daily").await["reserved_usd"]), worst_case(&body));
            }
            settle(&h, &clock, v["id"].as_str().unwrap()).await;
        }
    }

    // Day 2: both submit the same larger batches until refused, none settling meanwhile.
    clock.set("2026-05-04T16:00:00Z".parse().unwrap());
    let mut admitted = [Vec::new(), Vec::new()];
    for (n, key, p) in [(0, "alpha-key", "a"), (1, "beta-key", "b")] {
        for i in 0..10 {
            let (s, v, _) = h.submit(key, &test_body(p, i)).await;
            if s != 200 {
                assert_eq!(v["error"]["type"], "budget_exceeded_error", "{v}");
                break;
            }
            admitted[n].push(v["id"].as_str().unwrap().to_string());
        }
    }
    eprintln!("admitted: calibrated {}, worst case {}", admitted[0].len(), admitted[1].len());
    assert_eq!(admitted[1].len(), 3, "the worst-case budget fits three worst cases");
    assert!(
        admitted[0].len() > admitted[1].len(),
        "the calibrated budget admitted {} batches, the worst-case one {}",
        admitted[0].len(),
        admitted[1].len()
    );
    // What it risks: every held batch's worst case minus its hold, reported exactly.
    let b = h.budget("alpha-daily").await;
    assert_eq!(b["hold"], "calibrated");
    let held_worst = Money::from_picos(worst.picos() * admitted[0].len() as i128);
    let reserved = usd(&b["reserved_usd"]);
    let possible = usd(&b["possible_overshoot_usd"]);
    assert!(reserved < held_worst);
    assert_eq!(possible, held_worst - reserved);
    assert!(reserved <= limit);
    let m = h.metrics().await;
    let gauge = metric(&m, "batchcost_budget_possible_overshoot_usd", &[("budget", "alpha-daily")]);
    assert!((gauge - possible.to_f64_usd()).abs() < 1e-9, "{gauge} vs {possible}");
    assert_eq!(usd(&h.budget("beta-daily").await["possible_overshoot_usd"]), Money::ZERO);

    // Everything settles: the overshoot, if any, stays within what was reported.
    let mut settled = Money::ZERO;
    for id in &admitted[0] {
        let v = settle(&h, &clock, id).await;
        let cost = usd(&v["cost_usd"]);
        assert!(cost <= worst, "a batch cost more than its worst case");
        settled += cost;
    }
    let b = h.budget("alpha-daily").await;
    assert_eq!(usd(&b["spent_usd"]), settled);
    assert_eq!(usd(&b["reserved_usd"]), Money::ZERO);
    assert_eq!(usd(&b["possible_overshoot_usd"]), Money::ZERO, "nothing held, nothing at risk");
    eprintln!("settled {settled} of limit {limit}; reported possible overshoot {possible}");
    let overshoot = if settled > limit { settled - limit } else { Money::ZERO };
    assert!(overshoot <= possible, "overshot by {overshoot}, reported at most {possible}");
    h.stop().await;
}
