//! Failed items: the simulator errors a share of valid requests (`api_error`, worth
//! retrying) and refuses invalid ones; the runner retries the former as new batches and
//! reports the latter after one attempt.

mod runner_support;

use std::sync::Arc;

use batchcost::clock::SystemClock;
use batchcost::simulator::SimConfig;
use runner_support::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retryable_failures_succeed_on_a_later_attempt_and_invalid_requests_are_never_retried() {
    let sim = SimConfig { errored_fraction: 0.2, ..sim_config() };
    let h = harness(vec![], Arc::new(SystemClock), sim).await;
    // Every tenth request has a temperature the upstream refuses (the gateway's estimator
    // does not judge sampling parameters, so the batch is accepted).
    let input = write_input(h.dir.path(), "rt", 400, |i| {
        (i % 10 == 3).then(|| {
            json!({"model": "claude-haiku-4-5", "max_tokens": 16, "temperature": 5,
                   "messages": [{"role": "user", "content": "hello"}]})
        })
    });
    let out = h.dir.path().join("rt.out.jsonl");
    let summary = h.dir.path().join("rt.summary.json");
    let o = output({
        let mut c =
            run_cmd(&h, &input, &["--yes", "--max-batch-requests", "150", "--max-attempts", "8"]);
        c.arg("--out").arg(&out).arg("--summary-json").arg(&summary);
        c
    })
    .await;
    assert_eq!(o.status.code(), Some(1), "failed items make a non-zero exit: {}", text(&o.stderr));

    let (order, by) = results(&out);
    assert_eq!(order.len(), 400);
    let upstream = upstream_counts(&h, "rt-").await;
    let mut retried = 0;
    for i in 0..400 {
        let id = format!("rt-{i}");
        let v = &by[&id];
        let attempts = v["attempts"].as_u64().unwrap();
        assert_eq!(upstream[&id] as u64, attempts, "{id}: submitted once per attempt");
        if i % 10 == 3 {
            assert_eq!(v["result"]["type"], "errored", "{v}");
            assert_eq!(v["result"]["error"]["error"]["type"], "invalid_request_error", "{v}");
            assert_eq!(attempts, 1, "{id}: an invalid request is never retried");
        } else {
            assert_eq!(v["result"]["type"], "succeeded", "{id}: {v}");
            if attempts > 1 {
                retried += 1;
            }
        }
    }
    // About a fifth of the 360 valid requests fail their first attempt.
    assert!(retried > 30, "only {retried} items needed a retry");

    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["succeeded"], 360);
    assert_eq!(s["failed"], 40);
    assert_eq!(s["failed_by_reason"]["invalid_request_error"], 40);
    assert!(s["batches_by_attempt"]["2"].as_u64().unwrap() >= 1, "{s}");
    let listed = text(&o.stdout);
    assert!(
        listed.contains("failed items (40)")
            && listed.contains("rt-3  after 1 attempt(s): invalid_request_error: temperature"),
        "{listed}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_left_unprocessed_when_a_batch_expires_are_retried_in_a_new_batch() {
    // 24 simulated hours pass in 2.4 s; a batch completes one request per 500 simulated
    // seconds, so a 300-request batch expires with about 170 done.
    let sim = SimConfig { time_scale: 36_000.0, requests_per_second: 0.002, ..sim_config() };
    let h = harness(vec![], Arc::new(SystemClock), sim).await;
    let input = write_input(h.dir.path(), "ex", 300, |_| None);
    let out = h.dir.path().join("ex.out.jsonl");
    let o = output({
        let mut c = run_cmd(&h, &input, &["--yes", "--max-attempts", "3"]);
        c.arg("--out").arg(&out);
        c
    })
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (_, by) = results(&out);
    let upstream = upstream_counts(&h, "ex-").await;
    let second = by.values().filter(|v| v["attempts"] == 2).count();
    assert!(by.values().all(|v| v["result"]["type"] == "succeeded"));
    assert!(second > 50 && second < 250, "{second} items needed a second batch");
    for (id, v) in &by {
        assert_eq!(upstream[id] as u64, v["attempts"].as_u64().unwrap(), "{id}");
    }
    let err = text(&o.stderr);
    assert!(err.contains(&format!("attempt 2: retrying {second} requests in 1 batches")), "{err}");
    assert!(err.contains(" expired"), "{err}");
    h.stop().await;
}
