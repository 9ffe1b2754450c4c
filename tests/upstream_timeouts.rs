//! Every upstream call is bounded: with the simulator holding each call of one operation
//! longer than `upstream.anthropic.timeout_secs`, the gateway answers (504 or 502) within
//! a bounded time instead of hanging, and a timed-out create never leaves a hold behind
//! for a batch the upstream did not accept.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcost::clock::SystemClock;
use batchcost::config::Period;
use batchcost::money::Money;
use batchcost::simulator::{Faults, Operation};
use common::*;

const SLOW_MS: u64 = 2_500;

async fn gateway() -> Harness {
    let usd = Money::parse_usd("100").unwrap();
    harness_with(
        vec![budget("alpha-daily", Some("alpha"), Period::Day, usd)],
        Arc::new(SystemClock),
        sim_config(),
        |s| {
            s.upstreams[0].timeout_secs = 1;
            s.upstreams[0].max_attempts = 2;
        },
    )
    .await
}

fn slow(op: Operation) -> Faults {
    Faults { slow_rate: 1.0, slow_ms: SLOW_MS, operations: vec![op], ..Faults::default() }
}

async fn get(h: &Harness, path: &str) -> (u16, serde_json::Value) {
    let r = h.http.get(format!("{}{path}", h.base)).header("x-api-key", "alpha-key").send();
    let r = r.await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_slower_than_the_timeout_is_bounded_and_leaves_no_orphan_hold() {
    let h = gateway().await;
    h.sim.set_faults(slow(Operation::Create));
    let start = Instant::now();
    let (status, v, _) =
        h.submit("alpha-key", &batch_body("slow", "claude-haiku-4-5", 2, 16)).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "create hung for {took:?}");
    // Let the simulator finish whatever it was still doing with the create.
    h.sim.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(SLOW_MS + 500)).await;
    let accepted = h.sim.stats().creates_accepted;
    eprintln!("slow create: {status} after {took:?}, upstream accepted {accepted}");
    let reserved = h.budget("alpha-daily").await["reserved_usd"].as_str().unwrap().to_string();
    if status == 200 {
        assert_eq!(accepted, 1, "answered 200 for a batch the upstream never created: {v}");
        assert_ne!(reserved, "0", "an accepted batch must keep its hold until settled");
    } else {
        assert_eq!(status, 504, "{v}");
        assert_eq!(v["error"]["type"], "timeout_error");
        assert_eq!(
            accepted, 0,
            "the upstream created a batch after the gateway gave up on it and released its hold"
        );
        assert_eq!(reserved, "0", "hold left behind for a batch the upstream did not accept");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retrieve_list_cancel_and_results_slower_than_the_timeout_are_bounded() {
    let h = gateway().await;
    let (status, v, _) = h.submit("alpha-key", &batch_body("ok", "claude-haiku-4-5", 2, 16)).await;
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let calls: [(Operation, &str, String); 4] = [
        (Operation::Retrieve, "GET", format!("/v1/messages/batches/{id}")),
        // A project's list comes from the ledger, each batch object fresh from the
        // upstream: a slow retrieve is what can hold it up (issue 10's listing fix).
        (Operation::Retrieve, "GET", "/v1/messages/batches".into()),
        (Operation::Cancel, "POST", format!("/v1/messages/batches/{id}/cancel")),
        (Operation::Results, "GET", format!("/v1/messages/batches/{id}/results")),
    ];
    for (op, method, path) in calls {
        h.sim.set_faults(slow(op));
        let start = Instant::now();
        let (status, v) = if method == "GET" {
            get(&h, &path).await
        } else {
            let r = h.http.post(format!("{}{path}", h.base)).header("x-api-key", "alpha-key");
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json().await.unwrap_or_default())
        };
        let took = start.elapsed();
        eprintln!("slow {op:?}: {status} after {took:?}");
        assert!(took < Duration::from_secs(20), "{op:?} hung for {took:?}");
        // The results call retrieves first (to find results_url), then downloads.
        assert!(matches!(status, 502 | 504), "{op:?}: {status} {v}");
        assert_eq!(v["type"], "error", "{op:?}: {v}");
    }
    h.sim.set_faults(Faults::default());
    h.stop().await;
}
