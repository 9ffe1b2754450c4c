//! Recovery of submissions whose upstream answer was never recorded (a crash between the
//! reservation and the record of the upstream's acceptance): each finds its own upstream
//! batch, even among batches of the same size, or gives its hold back.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcost::budgets::{applicable, window_ref};
use batchcost::clock::SystemClock;
use batchcost::config::Period;
use batchcost::estimate::EstimateOptions;
use batchcost::gateway::App;
use batchcost::ledger::{Admit, BatchState, Hold, NewSubmission};
use batchcost::money::Money;
use batchcost::providers::anthropic::estimate::estimate_bytes;
use common::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// Records `body` as `submitting`, as `POST /v1/messages/batches` does before the create.
async fn pending(app: &App, sub_id: &str, project: &str, body: &Value, at: Timestamp) {
    let bytes = serde_json::to_vec(body).unwrap();
    let est = estimate_bytes(&bytes, &app.pricing, &EstimateOptions::new(at, 0.5)).unwrap();
    let windows = applicable(&app.settings.budgets, project)
        .map(|b| window_ref(b, &app.settings.timezone, at))
        .collect();
    let sub = NewSubmission {
        sub_id: sub_id.into(),
        project: project.into(),
        provider: "anthropic".into(),
        submitted_at: at,
        request_count: est.requests,
        body_hash: format!("hash-{sub_id}"),
        custom_id_fingerprint: est.custom_id_fingerprint,
        hold: Hold { usd: est.worst.cost, ..Hold::default() },
        windows,
        estimate_json: String::new(),
        dedupe_since: at,
        lease: None,
        bounds: Vec::new(),
    };
    assert!(matches!(app.ledger.admit(&sub).await.unwrap(), Admit::Admitted));
}

/// Creates `body` at the upstream directly, as a create whose answer was lost.
async fn upstream_create(h: &Harness, body: &Value) -> String {
    let v: Value = h
        .http
        .post(format!("{}/v1/messages/batches", h.sim.base_url()))
        .header("x-api-key", PROVIDER)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_sized_pending_submissions_each_adopt_their_own_upstream_batch() {
    let h = harness(
        vec![budget("all-daily", None, Period::Day, Money::from_usd(10))],
        Arc::new(SystemClock),
        sim_config(),
    )
    .await;
    let app = h.gw.app.clone();
    let bodies: Vec<Value> =
        (0..3).map(|i| batch_body(&format!("p{i}"), "claude-haiku-4-5", 4, 100)).collect();
    // Three rows of four requests, old enough to reconcile; the upstream only ever got the
    // second and the third, in reverse order. The upstream batches exist before the rows
    // do: the gateway's own tracker may reconcile a row the moment it is written, and a
    // row backdated 30 s whose batch was not yet created would rightly be failed.
    let past = Timestamp::now().checked_sub(SignedDuration::from_secs(30)).unwrap();
    let third = upstream_create(&h, &bodies[2]).await;
    let second = upstream_create(&h, &bodies[1]).await;
    for (i, body) in bodies.iter().enumerate() {
        let at = past.checked_add(SignedDuration::from_millis(i as i64)).unwrap();
        pending(&app, &format!("sub_p{i}"), PROJECTS[i % 2].0, body, at).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !app.ledger.batches_in_state(BatchState::Submitting).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "pending rows never resolved");
        batchcost::tracker::reconcile_pending(&app).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rec = |i: usize| {
        let app = app.clone();
        async move { app.ledger.batch(&format!("sub_p{i}")).await.unwrap().unwrap() }
    };
    let first = rec(0).await;
    assert_eq!(first.state, BatchState::Failed, "the upstream never had it: {first:?}");
    assert_eq!(first.upstream_id, None);
    assert_eq!(rec(1).await.upstream_id.as_deref(), Some(second.as_str()), "second row");
    assert_eq!(rec(2).await.upstream_id.as_deref(), Some(third.as_str()), "third row");
    let (a, b) = (h.wait_settled(&second).await, h.wait_settled(&third).await);
    assert_eq!((a["project"].as_str(), b["project"].as_str()), (Some("beta"), Some("alpha")));
    let spent = Money::parse_usd(a["cost_usd"].as_str().unwrap()).unwrap()
        + Money::parse_usd(b["cost_usd"].as_str().unwrap()).unwrap();
    let all = h.budget("all-daily").await;
    assert_eq!(all["spent_usd"], spent.usd_exact());
    assert_eq!(all["reserved_usd"], "0", "the hold of the row never created is released");
    h.stop().await;
}
