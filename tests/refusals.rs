//! Seeing why (issue 16): a refusal is logged once, recorded in the ledger with the id its
//! 429 carries and listed by `GET /api/batches`; the 429 says the amounts, the reset in the
//! configured zone and a `max_tokens` that fits (and it does); every response has a
//! request id; no key and a wrong key read differently; a deduplicated resubmission says
//! so; an unreachable upstream is named; `/api/estimate` answers a project key.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use batchcost::clock::ManualClock;
use batchcost::config::Period;
use batchcost::money::Money;
use common::*;
use serde_json::Value;

/// Everything the gateway logs in this test binary (one global subscriber).
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || Writer(w.clone()))
            .try_init();
        buf
    })
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged() -> String {
    String::from_utf8_lossy(&log().lock().unwrap()).to_string()
}

/// 14:00 in Seoul on 10 March 2026: the daily window resets at midnight, 10 hours later.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new("2026-03-10T05:00:00Z".parse().unwrap()))
}

async fn post(h: &Harness, path: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut r = h.http.post(format!("{}{path}", h.base)).header("anthropic-version", "2023-06-01");
    if let Some(k) = key {
        r = r.header("x-api-key", k);
    }
    r.json(body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_refusal_is_explained_recorded_listed_and_its_fix_works() {
    log();
    let limit = Money::parse_usd("0.5").unwrap();
    let h = harness(
        vec![budget("alpha-daily", Some("alpha"), Period::Day, limit)],
        clock(),
        sim_config(),
    )
    .await;
    // 10 Haiku 4.5 requests of up to 64,000 output tokens: $1.60 of output at batch price.
    let big = batch_body("big", "claude-haiku-4-5", 10, 64_000);
    let r = post(&h, "/v1/messages/batches", Some("alpha-key"), &big).await;
    assert_eq!(r.status(), 429);
    let request_id = r.headers()["request-id"].to_str().unwrap().to_string();
    let header_id = r.headers()["x-batchcost-refusal-id"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    let e = &v["error"];
    let msg = e["message"].as_str().unwrap();
    for part in [
        "batch would exceed budget 'alpha-daily' (day)",
        "worst case $1.60",
        "limit $0.50",
        "spent $0.00",
        "reserved by batches in flight $0.00",
        "resets at 2026-03-11T00:00:00+09:00 (Asia/Seoul, in 10h 00m)",
        "it would fit with max_tokens <= ",
    ] {
        assert!(msg.contains(part), "`{part}` in: {msg}");
    }
    assert_eq!(e["budget"]["resets_at"], "2026-03-11T00:00:00+09:00");
    let refusal_id = e["refusal_id"].as_str().unwrap().to_string();
    assert!(refusal_id.starts_with("ref_"), "{v}");
    assert_eq!(e["budget"]["refusal_id"], refusal_id.as_str());
    assert_eq!(header_id, refusal_id);
    assert!(request_id.starts_with("req_"), "{request_id}");

    // The fix the message names: that max_tokens on every request fits.
    let cap: u32 = msg
        .rsplit("max_tokens <= ")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cap > 1_000 && cap < 64_000, "{cap}");
    let (status, fits, _) =
        h.submit("alpha-key", &batch_body("big", "claude-haiku-4-5", 10, cap)).await;
    assert_eq!(status, 200, "max_tokens {cap} fits: {fits}");
    let (status, _, _) =
        h.submit("alpha-key", &batch_body("big2", "claude-haiku-4-5", 10, cap)).await;
    assert_eq!(status, 429, "and the cap leaves no room for a second one");

    // Logged once at INFO with project, reason, amounts and the ids.
    let log = logged();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&refusal_id) && l.contains("submission refused"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    for part in [
        "INFO",
        "project=alpha",
        "reason=\"budget_exceeded\"",
        "why=batch would exceed",
        "requested_usd=1.6",
        "limit_usd=0.5",
        &request_id,
    ] {
        assert!(lines[0].contains(part), "`{part}` in: {}", lines[0]);
    }
    assert!(!log.contains("alpha-key") && !log.contains(PROVIDER), "no secret in the log");

    // Recorded and listed.
    let one = h.admin(&format!("/api/batches/{refusal_id}")).await;
    assert_eq!(one["status"], "refused");
    assert_eq!(one["request_id"], request_id.as_str());
    assert_eq!(one["message"], msg);
    assert_eq!(one["requested_usd"], e["budget"]["requested_usd"]);
    let refused = h.admin("/api/batches?state=refused").await;
    let ids: Vec<&str> =
        refused["data"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{refused}");
    assert!(ids.contains(&refusal_id.as_str()));
    let all = h.admin("/api/batches?project=alpha").await;
    let kinds: Vec<&str> =
        all["data"].as_array().unwrap().iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 3, "two refusals and the batch: {all}");
    assert!(kinds.contains(&"batch"));
    assert_eq!(h.admin("/api/batches?project=beta").await["data"], serde_json::json!([]));
    let later = h.admin("/api/batches?from=2026-03-11").await;
    assert_eq!(later["data"], serde_json::json!([]), "local day filter: {later}");
    let today = h.admin("/api/batches?from=2026-03-10&to=2026-03-11&limit=1").await;
    assert_eq!(today["data"].as_array().unwrap().len(), 1);
    assert_eq!(today["has_more"], true);
    let bad = h.get("/api/batches?state=lost", As::Admin).await;
    assert_eq!(bad.status(), 400);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_has_a_request_id_and_keys_are_told_apart() {
    log();
    let h = harness(vec![], clock(), sim_config()).await;
    let body = batch_body("r", "claude-haiku-4-5", 2, 100);
    let mut seen = Vec::new();
    let mut check = |what: &str, r: &reqwest::Response| {
        let id = r
            .headers()
            .get("request-id")
            .unwrap_or_else(|| panic!("{what}: no request-id"))
            .to_str()
            .unwrap()
            .to_string();
        assert!(id.starts_with("req_") && id.len() > 10, "{what}: {id}");
        seen.push(id);
    };
    let none = post(&h, "/v1/messages/batches", None, &body).await;
    check("no key", &none);
    assert_eq!(none.status(), 401);
    let m: Value = none.json().await.unwrap();
    assert!(m["error"]["message"].as_str().unwrap().starts_with("no API key"), "{m}");
    let wrong = post(&h, "/v1/messages/batches", Some("alpha-kye"), &body).await;
    check("wrong key", &wrong);
    let m: Value = wrong.json().await.unwrap();
    assert!(m["error"]["message"].as_str().unwrap().contains("matches no project"), "{m}");
    let bad =
        post(&h, "/v1/messages/batches", Some("alpha-key"), &serde_json::json!({"requests": []}))
            .await;
    check("400", &bad);
    assert_eq!(bad.status(), 400);
    let ok = post(&h, "/v1/messages/batches", Some("alpha-key"), &body).await;
    check("create", &ok);
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().get("x-batchcost-deduplicated").is_none());
    let again = post(&h, "/v1/messages/batches", Some("alpha-key"), &body).await;
    check("retry", &again);
    assert_eq!(again.headers()["x-batchcost-deduplicated"], "true", "the client is told");
    for path in
        ["/healthz", "/readyz", "/nope", "/api/budgets", "/v1/messages/batches/msgbatch_nope"]
    {
        let r = h.get(path, As::Key("alpha-key")).await;
        check(path, &r);
    }
    let r = h.http.delete(format!("{}/healthz", h.base)).send().await.unwrap();
    check("405", &r);
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert!(
        unique.len() >= seen.len() - 2,
        "ids are fresh per request (relayed ones are the upstream's): {seen:?}"
    );
    let log = logged();
    assert!(
        log.lines().any(|l| l.contains(&seen[0]) && l.contains("status=401")),
        "the id is logged"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("submission refused") && l.contains("reason=unauthenticated")),
        "{log}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_key_estimates_against_its_own_budgets() {
    let limit = Money::parse_usd("0.5").unwrap();
    let h = harness(
        vec![budget("alpha-daily", Some("alpha"), Period::Day, limit)],
        clock(),
        sim_config(),
    )
    .await;
    let big = batch_body("e", "claude-haiku-4-5", 10, 64_000);
    let r = post(&h, "/api/estimate", Some("alpha-key"), &big).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["project"], "alpha");
    let b = &v["budgets"][0];
    assert_eq!(b["name"], "alpha-daily");
    assert_eq!(b["fits"], false);
    assert!(b["message"].as_str().unwrap().contains("max_tokens <= "), "{b}");
    let r = post(&h, "/api/estimate?project=beta", Some("alpha-key"), &big).await;
    assert_eq!(r.status(), 400, "another project's budgets are not a project key's to read");
    let r = post(&h, "/api/estimate", None, &big).await;
    assert_eq!(r.status(), 401);
    let r = h
        .http
        .post(format!("{}/api/estimate?project=alpha", h.base))
        .bearer_auth(ADMIN)
        .json(&big)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["budgets"][0]["fits"], false, "the admin token reads any project: {v}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_named_and_its_gauge_drops() {
    let h = harness_with(vec![], clock(), sim_config(), |s| {
        s.upstreams[0].base_url = "http://127.0.0.1:9".into();
        s.upstreams[0].max_attempts = 1;
    })
    .await;
    let r = post(
        &h,
        "/v1/messages/batches",
        Some("alpha-key"),
        &batch_body("u", "claude-haiku-4-5", 1, 10),
    )
    .await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("`anthropic` at http://127.0.0.1:9: connection failed"), "{msg}");
    assert!(!msg.contains(PROVIDER));
    assert_eq!(
        metric(&h.metrics().await, "batchcost_upstream_up", &[("provider", "anthropic")]),
        0.0
    );
    h.stop().await;
    let h = harness(vec![], clock(), sim_config()).await;
    let (status, _, _) = h.submit("alpha-key", &batch_body("u", "claude-haiku-4-5", 1, 10)).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&h.metrics().await, "batchcost_upstream_up", &[("provider", "anthropic")]),
        1.0
    );
    h.stop().await;
}
