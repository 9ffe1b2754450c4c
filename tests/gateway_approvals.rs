//! Approvals for large batches through the real HTTP path: a hold above a budget's
//! `approval_above_usd` is refused with 429 `approval_required` and an approval id; an
//! approval admits that project's same body once, within its lifetime, never another body
//! or another project; every refusal and approval is in the ledger with who and when.

mod common;

use std::sync::Arc;

use batchcost::clock::ManualClock;
use batchcost::config::{Budget, Period};
use batchcost::estimate::EstimateOptions;
use batchcost::money::Money;
use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::estimate::estimate_bytes;
use common::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

fn worst_case(body: &Value) -> Money {
    let table =
        PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
            .unwrap();
    let bytes = serde_json::to_vec(body).unwrap();
    estimate_bytes(&bytes, &table, &EstimateOptions::new(Timestamp::now(), 0.5)).unwrap().worst.cost
}

fn approval_budget(above: Money) -> Budget {
    let mut b = budget("all-daily", None, Period::Day, Money::from_usd(100));
    b.policy.approval_above = Some(above);
    b
}

async fn approve(h: &Harness, id: &str, by: Value) -> (u16, Value) {
    let r = h
        .http
        .post(format!("{}/api/approvals/{id}/approve", h.base))
        .bearer_auth(ADMIN)
        .json(&by)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn approval(h: &Harness, id: &str) -> Value {
    let all = h.admin("/api/approvals").await;
    all["approvals"].as_array().unwrap().iter().find(|a| a["id"] == id).cloned().unwrap()
}

fn refused_id(status: u16, v: &Value, headers: &reqwest::header::HeaderMap) -> String {
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["type"], "approval_required", "{v}");
    assert_eq!(headers["x-should-retry"], "false");
    v["error"]["approval"]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_admits_the_same_body_from_the_same_project_once_until_it_expires() {
    let big = batch_body("big", "claude-haiku-4-5", 20, 2_000);
    let other = batch_body("oth", "claude-haiku-4-5", 20, 2_000);
    let small = batch_body("s", "claude-haiku-4-5", 1, 10);
    let above = Money::from_picos(worst_case(&big).picos() / 2);
    assert!(worst_case(&small) <= above);
    let t0: Timestamp = "2026-05-04T01:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let h = harness(vec![approval_budget(above)], clock.clone(), sim_config()).await;

    // The estimate says which batches would wait for an approval.
    for (body, needs) in [(&big, true), (&small, false)] {
        let r = h
            .http
            .post(format!("{}/api/estimate?project=alpha", h.base))
            .bearer_auth(ADMIN)
            .json(body)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["budgets"][0]["needs_approval"], needs, "{v}");
        assert_eq!(v["budgets"][0]["hold_usd"], worst_case(body).usd_exact());
    }
    // A small batch needs nothing; a large one is refused before the upstream sees it.
    assert_eq!(h.submit("alpha-key", &small).await.0, 200);
    let (s, v, hd) = h.submit("alpha-key", &big).await;
    let id = refused_id(s, &v, &hd);
    assert!(id.starts_with("apr_"), "{id}");
    assert_eq!(v["error"]["approval"]["budget"], "all-daily");
    assert_eq!(v["error"]["approval"]["requested_usd"], worst_case(&big).usd_exact());
    assert_eq!(v["error"]["approval"]["state"], "pending");
    assert_eq!(h.sim.stats().creates_accepted, 1);
    // Refused again: the same request, counted.
    let (s, v, hd) = h.submit("alpha-key", &big).await;
    assert_eq!(refused_id(s, &v, &hd), id);
    let a = approval(&h, &id).await;
    assert_eq!((a["state"].as_str(), a["refusals"].as_u64()), (Some("pending"), Some(2)));
    assert_eq!(a["project"], "alpha");
    assert_eq!(a["requested_at"], batchcost::clock::rfc3339_micros(t0));

    let (s, a) = approve(&h, &id, json!({"by": "alice"})).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["state"], "approved");
    assert_eq!(a["approved_by"], "api:alice");
    assert_eq!(
        a["expires_at"],
        batchcost::clock::rfc3339_micros(t0 + SignedDuration::from_hours(24))
    );

    // Neither another body nor another project rides on it.
    let (s, v, hd) = h.submit("alpha-key", &other).await;
    assert_ne!(refused_id(s, &v, &hd), id);
    let (s, v, hd) = h.submit("beta-key", &big).await;
    assert_ne!(refused_id(s, &v, &hd), id);
    assert_eq!(h.sim.stats().creates_accepted, 1);

    // The approved body from its project is admitted and forwarded.
    clock.advance(SignedDuration::from_mins(5));
    let (s, v, _) = h.submit("alpha-key", &big).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h.sim.stats().creates_accepted, 2);
    let a = approval(&h, &id).await;
    assert_eq!(a["state"], "used");
    let rec = h.admin(&format!("/api/batches/{}", v["id"].as_str().unwrap())).await;
    assert_eq!(a["used_by_submission"], rec["submission_id"]);
    // The client's retry within the dedupe window is answered with the same batch.
    let (s, again, _) = h.submit("alpha-key", &big).await;
    assert_eq!((s, &again["id"]), (200, &v["id"]));
    assert_eq!(h.sim.stats().creates_accepted, 2);
    // Used once: the same body later needs a new approval.
    clock.advance(SignedDuration::from_hours(1));
    let (s, v, hd) = h.submit("alpha-key", &big).await;
    let second = refused_id(s, &v, &hd);
    assert_ne!(second, id);
    let (s, _) = approve(&h, &second, json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(approval(&h, &second).await["approved_by"], "api:admin");
    // It expires unused.
    clock.advance(SignedDuration::from_hours(24) + SignedDuration::from_secs(1));
    assert_eq!(approval(&h, &second).await["state"], "expired");
    let (s, v, hd) = h.submit("alpha-key", &big).await;
    let third = refused_id(s, &v, &hd);
    assert!(third != second && third != id);
    let (s, v) = approve(&h, &second, json!({})).await;
    assert_eq!(s, 409, "an expired approval cannot be approved again: {v}");
    assert_eq!(h.sim.stats().creates_accepted, 2);
    let (s, _) = approve(&h, "apr_missing", json!({})).await;
    assert_eq!(s, 404);
    let m = h.metrics().await;
    assert_eq!(
        metric(
            &m,
            "batchcost_submissions_rejected_total",
            &[("project", "alpha"), ("reason", "approval_required")]
        ),
        5.0
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_batch_is_still_held_to_the_limit() {
    let big = batch_body("big", "claude-haiku-4-5", 20, 2_000);
    let worst = worst_case(&big);
    let mut b =
        budget("alpha-daily", Some("alpha"), Period::Day, Money::from_picos(worst.picos() - 1));
    b.policy.approval_above = Some(Money::from_picos(worst.picos() / 2));
    let clock = Arc::new(ManualClock::new("2026-05-04T01:00:00Z".parse().unwrap()));
    let h = harness(vec![b], clock, sim_config()).await;
    let (s, v, hd) = h.submit("alpha-key", &big).await;
    let id = refused_id(s, &v, &hd);
    assert_eq!(approve(&h, &id, json!({})).await.0, 200);
    let (s, v, _) = h.submit("alpha-key", &big).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["type"], "budget_exceeded_error");
    // Not admitted, so the approval is still there for when the budget has room.
    assert_eq!(approval(&h, &id).await["state"], "approved");
    assert_eq!(h.sim.stats().create_attempts, 0);
    h.stop().await;
}
