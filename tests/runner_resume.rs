//! The case the gateway's retry dedupe does not cover: a create that reached the upstream
//! but whose answer the runner never recorded, resumed after the dedupe window (here 0 s).
//! The runner must find its batch in the project's list, not create it again, and must
//! not take another client's batch of the same size for its own.

mod runner_support;

use std::sync::Arc;

use batchcost::clock::SystemClock;
use runner_support::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unrecorded_create_is_found_in_the_list_and_a_stranger_of_the_same_size_is_not_taken() {
    let h = harness_with(vec![], Arc::new(SystemClock), sim_config(), |s| {
        s.limits.dedupe_window_secs = 0
    })
    .await;
    // Another client of the same project submits a batch of the same size first.
    let (status, stranger, _) =
        h.submit(PROJECTS[0].1, &batch_body("other", "claude-haiku-4-5", 50, 16)).await;
    assert_eq!(status, 200, "{stranger}");

    let input = write_input(h.dir.path(), "res", 50, |_| None);
    let state = h.dir.path().join("res.state.json");
    let o = output(run_cmd(&h, &input, &["--yes", "--state", state.to_str().unwrap()])).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut st: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let ours = st["batches"][0]["id"].as_str().unwrap().to_string();

    // Rewind the state to "create sent, answer never recorded", with no fence (so both
    // batches are newer than it).
    let b = &mut st["batches"][0];
    b["phase"] = json!("creating");
    b["id"] = Value::Null;
    b["fence"] = Value::Null;
    b["cost_usd"] = Value::Null;
    b["list_cost_usd"] = Value::Null;
    for it in st["items"].as_array_mut().unwrap() {
        *it = json!({"a": 0, "o": "p"});
    }
    std::fs::write(&state, serde_json::to_vec(&st).unwrap()).unwrap();
    let out = input.with_extension("jsonl.results.jsonl");
    std::fs::remove_file(&out).unwrap();

    let o = output(run_cmd(&h, &input, &["--yes", "--state", state.to_str().unwrap()])).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("found {}", stranger["id"].as_str().unwrap())),
        "the older stranger is tried first: {err}"
    );
    assert!(err.contains("was not this run's"), "{err}");
    assert!(err.contains(&format!("found {ours}")), "{err}");
    let (order, by) = results(&out);
    assert_eq!(order.len(), 50);
    assert!(by.values().all(|v| v["result"]["type"] == "succeeded"));
    let counts = upstream_counts(&h, "res-").await;
    assert_eq!(counts.len(), 50);
    assert!(counts.values().all(|n| *n == 1), "created again: {counts:?}");
    let st: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(st["batches"][0]["id"], ours.as_str());
    assert_eq!(st["foreign"][0], stranger["id"]);
    h.stop().await;
}
