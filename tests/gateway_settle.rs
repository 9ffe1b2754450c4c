//! Settlement through the real HTTP path: exact cost from the result lines, one upstream
//! batch per client request even when the client retries, holds released on refusal.

mod common;

use std::sync::Arc;

use batchcost::clock::SystemClock;
use batchcost::config::Period;
use batchcost::money::Money;
use batchcost::pricing::{PriceTable, TokenUsage};
use batchcost::providers::anthropic::wire::{BatchResult, ResultLine};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_batch_costs_exactly_what_its_result_lines_say() {
    let h = harness(
        vec![budget("alpha-daily", Some("alpha"), Period::Day, Money::from_usd(100))],
        Arc::new(SystemClock),
        sim_config(),
    )
    .await;
    let (status, v, _) =
        h.submit("alpha-key", &batch_body("s", "claude-sonnet-4-6", 40, 600)).await;
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let rec = h.wait_settled(&id).await;
    let results = h.get(&format!("/v1/messages/batches/{id}/results"), As::Key("alpha-key")).await;
    assert_eq!(results.headers()["content-type"], "application/x-jsonl");
    let text = results.text().await.unwrap();
    let table =
        PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
            .unwrap();
    let submitted: jiff::Timestamp = rec["submitted_at"].as_str().unwrap().parse().unwrap();
    let (mut cost, mut list, mut lines) = (Money::ZERO, Money::ZERO, 0);
    for line in text.lines() {
        lines += 1;
        let l: ResultLine = serde_json::from_str(line).unwrap();
        if let BatchResult::Succeeded { message } = l.result {
            let price = table.resolve(&message.model, submitted).unwrap();
            let c = price.cost(&TokenUsage::from_anthropic(&message.usage));
            cost += c.cost;
            list += c.list_cost;
        }
    }
    assert_eq!(lines, 40);
    assert!(cost > Money::ZERO);
    assert_eq!(rec["cost_usd"], cost.usd_exact());
    assert_eq!(rec["list_cost_usd"], list.usd_exact());
    let b = h.budget("alpha-daily").await;
    assert_eq!(b["spent_usd"], cost.usd_exact());
    assert_eq!(b["reserved_usd"], "0");
    let m = h.metrics().await;
    let counted = metric(&m, "batchcost_cost_usd_total", &[("project", "alpha")]);
    assert!((counted - cost.to_f64_usd()).abs() < 1e-9, "{counted} vs {cost}");
    assert_eq!(metric(&m, "batchcost_batches_settled_total", &[("project", "alpha")]), 1.0);
    assert_eq!(metric(&m, "batchcost_batches_in_flight", &[("project", "alpha")]), 0.0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_retrying_a_create_gets_the_first_batch_back() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    let body = batch_body("r", "claude-haiku-4-5", 5, 100);
    let (s1, v1, _) = h.submit("alpha-key", &body).await;
    let (s2, v2, _) = h.submit("alpha-key", &body).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(v1["id"], v2["id"]);
    assert_eq!(h.sim.stats().creates_accepted, 1);
    // The same body from another project is that project's own batch.
    let (s3, v3, _) = h.submit("beta-key", &body).await;
    assert_eq!(s3, 200);
    assert_ne!(v3["id"], v1["id"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_projects_batch_is_a_404_and_keys_are_required() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    let (_, v, _) = h.submit("alpha-key", &batch_body("p", "claude-haiku-4-5", 2, 100)).await;
    let id = v["id"].as_str().unwrap();
    for path in [
        format!("/v1/messages/batches/{id}"),
        format!("/v1/messages/batches/{id}/results"),
        "/v1/messages/batches/msgbatch_nope".into(),
    ] {
        let r = h.get(&path, As::Key("beta-key")).await;
        assert_eq!(r.status(), 404, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "not_found_error");
    }
    let r = h.get(&format!("/v1/messages/batches/{id}"), As::Key("wrong")).await;
    assert_eq!(r.status(), 401);
    let r = h.http.get(format!("{}/api/budgets", h.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r =
        h.http.get(format!("{}/metrics", h.base)).bearer_auth("alpha-key").send().await.unwrap();
    assert_eq!(r.status(), 401);
    h.stop().await;
}

/// Retrieves through the gateway until the upstream says the batch ended (bounded).
async fn wait_ended(h: &Harness, key: &str, id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = h.get(&format!("/v1/messages/batches/{id}"), As::Key(key)).await;
        let v: serde_json::Value = r.json().await.unwrap();
        if v["processing_status"] == "ended" {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "batch {id} did not end: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_another_task_is_settling_is_not_deleted_from_under_it() {
    // Slow enough that the batch is still running when the settling mark is taken.
    let sim = batchcost::simulator::SimConfig { time_scale: 60.0, ..sim_config() };
    let h = harness(vec![], Arc::new(SystemClock), sim).await;
    let (status, v, _) =
        h.submit("alpha-key", &batch_body("del", "claude-haiku-4-5", 3, 100)).await;
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let rec = h.admin(&format!("/api/batches/{id}")).await;
    let sub_id = rec["submission_id"].as_str().unwrap().to_string();
    // Another task of this process is streaming its results right now: its mark is in
    // the ledger.
    let lease = batchcost::replica::lease(&h.gw.app);
    assert!(h.gw.app.ledger.begin_settling(&sub_id, &lease, "other-task").await.unwrap());
    wait_ended(&h, "alpha-key", &id).await;
    let del = |h: &Harness| {
        h.http
            .delete(format!("{}/v1/messages/batches/{id}", h.base))
            .header("x-api-key", "alpha-key")
            .send()
    };
    let r = del(&h).await.unwrap();
    assert_eq!(r.status(), 409, "deleted while its results were still being read");
    // That settlement finishes (here: the tracker takes over); then the delete goes through.
    h.gw.app.ledger.end_settling(&sub_id, "other-task").await.unwrap();
    let rec = h.wait_settled(&id).await;
    assert!(rec["cost_usd"].as_str().is_some(), "{rec}");
    let r = del(&h).await.unwrap();
    assert_eq!(r.status(), 200);
    h.stop().await;
}

/// Four one-request alpha batches with three beta batches between them, upstream order
/// (newest first) a3 b2 a2 b1 a1 b0 a0; returns alpha's ids, oldest first.
async fn interleaved(h: &Harness, a: &str, b: &str) -> Vec<String> {
    let mut alpha = Vec::new();
    for i in 0..4 {
        let (s, v, _) =
            h.submit("alpha-key", &batch_body(&format!("{a}{i}"), "claude-haiku-4-5", 1, 50)).await;
        assert_eq!(s, 200, "{v}");
        alpha.push(v["id"].as_str().unwrap().to_string());
        if i < 3 {
            let (s, v, _) = h
                .submit("beta-key", &batch_body(&format!("{b}{i}"), "claude-haiku-4-5", 1, 50))
                .await;
            assert_eq!(s, 200, "{v}");
        }
    }
    alpha
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_with_before_id_pages_towards_newer_batches_newest_first() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    // Upstream, newest first: a4 b3 a3 b2 a2 b1 a1.
    let alpha = interleaved(&h, "a", "b").await;
    let page = |before: String| {
        let h = &h;
        async move {
            let path = format!("/v1/messages/batches?limit=2&before_id={before}");
            let v: serde_json::Value =
                h.get(&path, As::Key("alpha-key")).await.json().await.unwrap();
            v
        }
    };
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    };
    // The two alpha batches just newer than a1, newest first, as the upstream orders a page.
    let first = page(alpha[0].clone()).await;
    assert_eq!(ids(&first), vec![alpha[2].clone(), alpha[1].clone()], "{first}");
    assert_eq!(first["first_id"], alpha[2].as_str());
    assert_eq!(first["last_id"], alpha[1].as_str());
    assert_eq!(first["has_more"], true);
    // The SDK continues with before_id = first_id.
    let next = page(alpha[2].clone()).await;
    assert_eq!(ids(&next), vec![alpha[3].clone()], "{next}");
    assert_eq!(next["has_more"], false);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_reaches_the_last_upstream_page_says_it_has_no_more() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    // Upstream, newest first: a3 b2 a2 b1 a1 b0 a0.
    let mut alpha = interleaved(&h, "m", "n").await;
    // Pages of 5 upstream: alpha's 4 batches span both, and the second is the last.
    let r = h.get("/v1/messages/batches?limit=5", As::Key("alpha-key")).await;
    let v: serde_json::Value = r.json().await.unwrap();
    let ids: Vec<&str> =
        v["data"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    alpha.reverse();
    assert_eq!(ids, alpha, "{v}");
    assert_eq!(v["has_more"], false, "{v}");
    h.stop().await;
}
