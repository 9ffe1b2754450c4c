//! Budget races (contract section 7.1): hundreds of concurrent submissions from two
//! projects against per-project and shared global budgets. No window is ever seen above
//! its limit, and every refusal is explained by a window that really was full.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use batchcost::clock::{Clock, ManualClock, SystemClock};
use batchcost::config::Period;
use batchcost::estimate::EstimateOptions;
use batchcost::money::Money;
use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::estimate::estimate_bytes;
use common::*;
use jiff::Timestamp;
use serde_json::Value;

const BUDGETS: [&str; 3] = ["alpha-daily", "beta-daily", "all-daily"];

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

fn budgets(alpha: Money, beta: Money, all: Money) -> Vec<batchcost::config::Budget> {
    vec![
        budget("alpha-daily", Some("alpha"), Period::Day, alpha),
        budget("beta-daily", Some("beta"), Period::Day, beta),
        budget("all-daily", None, Period::Day, all),
    ]
}

/// Reads every window until `stop`, asserting spent + reserved never exceeds its limit.
/// Returns how many snapshots it checked.
fn sample_windows(h: Arc<Harness>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let mut samples = 0;
        while !stop.load(Ordering::Relaxed) {
            for b in h.admin("/api/budgets").await["budgets"].as_array().unwrap() {
                let used = usd(&b["spent_usd"]) + usd(&b["reserved_usd"]);
                assert!(used <= usd(&b["limit_usd"]), "{} overshot: {b}", b["name"]);
            }
            samples += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples
    })
}

/// Submits every body at once; returns (project, status, answer) per body.
async fn storm(h: &Arc<Harness>, bodies: Vec<(usize, Value)>) -> Vec<(usize, u16, Value)> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|(p, body)| {
            let h = h.clone();
            tokio::spawn(async move {
                let (status, v, _) = h.submit(PROJECTS[p].1, &body).await;
                (p, status, v)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// A refusal must name a window that could not take the batch as it stood.
fn assert_explained(v: &Value) {
    assert_eq!(v["error"]["type"], "budget_exceeded_error", "{v}");
    let b = &v["error"]["budget"];
    assert!(BUDGETS.contains(&b["name"].as_str().unwrap()), "{v}");
    let wanted = usd(&b["spent_usd"]) + usd(&b["reserved_usd"]) + usd(&b["requested_usd"]);
    assert!(wanted > usd(&b["limit_usd"]), "refused although it fit: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_at_once_fill_shared_and_own_budgets_exactly() {
    // Same-length tags: every body has the same worst case.
    let one = worst_case(&batch_body("a000", "claude-haiku-4-5", 3, 500));
    let units = |n: i128| Money::from_picos(one.picos() * n);
    // A still clock: nothing settles, every hold stays at its worst case, so exactly
    // twelve fit (the global budget binds before either project's eight).
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::now()));
    let h = Arc::new(harness(budgets(units(8), units(8), units(12)), clock, sim_config()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_windows(h.clone(), stop.clone());
    let bodies = (0..300)
        .map(|i| {
            let p = i % 2;
            (p, batch_body(&format!("{}{i:03}", ["a", "b"][p]), "claude-haiku-4-5", 3, 500))
        })
        .collect();
    let answers = storm(&h, bodies).await;
    stop.store(true, Ordering::Relaxed);
    assert!(sampler.await.unwrap() > 0);
    let mut accepted = [0, 0];
    for (p, status, v) in &answers {
        match status {
            200 => accepted[*p] += 1,
            429 => assert_explained(v),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(accepted[0] + accepted[1], 12, "{accepted:?}: every batch that fit was taken");
    assert!(accepted[0] <= 8 && accepted[1] <= 8, "{accepted:?}");
    assert_eq!(h.sim.stats().creates_accepted, 12);
    let all = h.budget("all-daily").await;
    assert_eq!(usd(&all["reserved_usd"]), units(12));
    for (i, name) in ["alpha-daily", "beta-daily"].into_iter().enumerate() {
        assert_eq!(usd(&h.budget(name).await["reserved_usd"]), units(accepted[i]));
    }
    Arc::into_inner(h).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_batches_settle_under_the_storm_every_refusal_is_a_full_window() {
    let big = worst_case(&batch_body("a000", "claude-haiku-4-5", 6, 800));
    let units = |n: i128| Money::from_picos(big.picos() * n);
    let h = Arc::new(
        harness(budgets(units(12), units(12), units(18)), Arc::new(SystemClock), sim_config())
            .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_windows(h.clone(), stop.clone());
    // Mixed sizes; batches end and settle (freeing the unused part of their holds) while
    // the others are still being admitted.
    let bodies = (0..300)
        .map(|i| {
            let p = i % 2;
            let tag = format!("{}{i:03}", ["a", "b"][p]);
            (p, batch_body(&tag, "claude-haiku-4-5", 1 + i % 6, 200 + 100 * (i % 7) as u32))
        })
        .collect();
    let answers = storm(&h, bodies).await;
    let mut accepted = Vec::new();
    for (p, status, v) in &answers {
        match status {
            200 => accepted.push((*p, v["id"].as_str().unwrap().to_string())),
            429 => assert_explained(v),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(accepted.len() > 18, "settlements freed room: {}", accepted.len());
    assert!(accepted.len() < 300, "the budgets did bind");
    let mut spent = [Money::ZERO, Money::ZERO];
    let deadline = Instant::now() + Duration::from_secs(60);
    for (p, id) in &accepted {
        let rec = h.wait_settled(id).await;
        spent[*p] += usd(&rec["cost_usd"]);
        assert!(Instant::now() < deadline);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(sampler.await.unwrap() > 0);
    assert_eq!(h.sim.stats().creates_accepted, accepted.len() as u64);
    for (name, want) in
        [("alpha-daily", spent[0]), ("beta-daily", spent[1]), ("all-daily", spent[0] + spent[1])]
    {
        let b = h.budget(name).await;
        assert_eq!(usd(&b["spent_usd"]), want, "{name}");
        assert_eq!(b["reserved_usd"], "0", "{name}");
    }
    Arc::into_inner(h).unwrap().stop().await;
}
