//! Failed items: the simulator fails a share of valid requests as overloaded (worth
//! retrying) and another share as invalid (`--overloaded-fraction`, `--invalid-fraction`),
//! and refuses requests that are invalid in themselves; the runner retries the overloaded
//! ones as new batches until they succeed and reports the invalid ones after the attempt
//! that found them, never sending them again. What the upstream answered each time is
//! read back from the simulator and compared, item by item, with `--out`.

mod runner_support;

use std::collections::HashMap;
use std::sync::Arc;

use batchcost::clock::SystemClock;
use batchcost::simulator::SimConfig;
use runner_support::*;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Succeeded,
    Overloaded,
    Invalid,
}

/// Checks every item's upstream history against its `--out` line: overloaded answers
/// only before the last, the last one in `--out`, one submission per attempt, nothing
/// sent after an invalid answer. Returns (items retried, items invalid, items succeeded).
fn check_history(
    history: &HashMap<String, Vec<Value>>,
    out: &HashMap<String, Value>,
    answer: impl Fn(&Value) -> Answer,
) -> (usize, usize, usize) {
    assert_eq!(history.len(), out.len(), "every item reached the upstream");
    let (mut retried, mut invalid, mut succeeded) = (0, 0, 0);
    for (id, answers) in history {
        let v = &out[id];
        let attempts = v["attempts"].as_u64().unwrap() as usize;
        assert_eq!(answers.len(), attempts, "{id}: submitted exactly once per attempt");
        let kinds: Vec<Answer> = answers.iter().map(&answer).collect();
        let (last, before) = kinds.split_last().unwrap();
        assert!(
            before.iter().all(|k| *k == Answer::Overloaded),
            "{id}: only overloaded answers are retried: {kinds:?}"
        );
        assert_eq!(answer(v), *last, "{id}: --out holds the last answer: {v}");
        match last {
            Answer::Succeeded => succeeded += 1,
            Answer::Invalid => invalid += 1,
            Answer::Overloaded => panic!("{id}: still overloaded after {attempts} attempts"),
        }
        if attempts > 1 {
            retried += 1;
        }
    }
    (retried, invalid, succeeded)
}

fn anthropic_answer(v: &Value) -> Answer {
    match (v["result"]["type"].as_str(), v["result"]["error"]["error"]["type"].as_str()) {
        (Some("succeeded"), _) => Answer::Succeeded,
        (_, Some("overloaded_error")) => Answer::Overloaded,
        (_, Some("invalid_request_error")) => Answer::Invalid,
        other => panic!("unexpected answer {other:?}: {v}"),
    }
}

fn gemini_answer(v: &Value) -> Answer {
    match (v["response"].is_object(), v["error"]["code"].as_i64()) {
        (true, _) => Answer::Succeeded,
        (_, Some(14)) => Answer::Overloaded,
        (_, Some(3)) => Answer::Invalid,
        other => panic!("unexpected answer {other:?}: {v}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retryable_failures_succeed_on_a_later_attempt_and_invalid_requests_are_never_retried() {
    let sim = SimConfig { overloaded_fraction: 0.2, invalid_fraction: 0.05, ..sim_config() };
    let h = harness(vec![], Arc::new(SystemClock), sim).await;
    // Every tenth request also has a temperature the upstream refuses (the gateway's
    // estimator does not judge sampling parameters, so the batch is accepted).
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
    let history = answers_in_order(upstream_anthropic(&h).await, "rt-");
    let (retried, invalid, succeeded) = check_history(&history, &by, anthropic_answer);
    for i in (3..400).step_by(10) {
        let id = format!("rt-{i}");
        let v = &by[&id];
        assert_eq!(v["result"]["error"]["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["attempts"], 1, "{id}: an invalid request is never retried");
    }
    // A fifth of the valid requests are overloaded on their first attempt; a twentieth of
    // every valid submission is drawn invalid, on top of the 40 invalid in themselves.
    assert!(retried > 30, "only {retried} items needed a retry");
    assert!(invalid > 40, "no request was drawn invalid: {invalid}");

    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["succeeded"], succeeded);
    assert_eq!(s["failed"], invalid);
    assert_eq!(s["failed_by_reason"]["invalid_request_error"], invalid);
    assert!(s["batches_by_attempt"]["2"].as_u64().unwrap() >= 1, "{s}");
    let listed = text(&o.stdout);
    assert!(
        listed.contains(&format!("failed items ({invalid})"))
            && listed.contains("rt-3  after 1 attempt(s): invalid_request_error: temperature"),
        "{listed}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gemini_overloaded_requests_are_retried_and_invalid_ones_reported_once() {
    let sim = SimConfig { overloaded_fraction: 0.2, invalid_fraction: 0.05, ..sim_config() };
    let h = harness_all(sim, |_| {}).await;
    let input = write_gemini_input(h.dir.path(), "gr", 500);
    let out = h.dir.path().join("gr.out.jsonl");
    let summary = h.dir.path().join("gr.summary.json");
    let o = output({
        let mut c =
            run_cmd(&h, &input, &["--yes", "--max-batch-requests", "200", "--max-attempts", "8"]);
        c.arg("--out").arg(&out).arg("--summary-json").arg(&summary);
        c
    })
    .await;
    assert_eq!(o.status.code(), Some(1), "failed items make a non-zero exit: {}", text(&o.stderr));
    let (order, by) = results(&out);
    assert_eq!(order.len(), 500);
    let history = answers_in_order(upstream_gemini(&h).await, "gr-");
    let (retried, invalid, succeeded) = check_history(&history, &by, gemini_answer);
    assert!(retried > 40, "only {retried} items needed a retry");
    assert!(invalid > 5, "only {invalid} requests were drawn invalid");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["succeeded"], succeeded);
    assert_eq!(s["failed"], invalid);
    assert_eq!(s["failed_by_reason"]["INVALID_ARGUMENT"], invalid, "{s}");
    let err = text(&o.stderr);
    assert!(err.contains("attempt 2: retrying"), "{err}");
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
