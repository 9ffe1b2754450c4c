//! Upstream faults (contract section 7): with the simulator answering 500, 529 and 429 with
//! `retry-after`, slowly, cutting results streams mid-line and losing create answers, the
//! gateway retries only what is safe, never makes two upstream batches for one client
//! request, and settles every batch at the cost its result lines give.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcost::clock::SystemClock;
use batchcost::config::Period;
use batchcost::money::Money;
use batchcost::pricing::{PriceTable, TokenUsage};
use batchcost::providers::anthropic::wire::{BatchPage, BatchResult, ResultLine};
use batchcost::simulator::{Faults, Operation};
use common::*;
use serde_json::Value;

/// Submits like a client that retries anything but a budget refusal, with the same body.
async fn submit_until_ok(h: &Harness, key: &str, body: &Value) -> (String, u32) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tries = 0;
    loop {
        tries += 1;
        let (status, v, _) = h.submit(key, body).await;
        if status == 200 {
            return (v["id"].as_str().unwrap().to_string(), tries);
        }
        assert_ne!(v["error"]["type"], "budget_exceeded_error", "{v}");
        assert!(Instant::now() < deadline, "never accepted: {status} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn price_table() -> PriceTable {
    PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
        .unwrap()
}

async fn sim_get(h: &Harness, path: &str) -> reqwest::Response {
    let r = h
        .http
        .get(format!("{}{path}", h.sim.base_url()))
        .header("x-api-key", PROVIDER)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r
}

/// Every batch the upstream holds (call with faults off).
async fn upstream_ids(h: &Harness) -> Vec<String> {
    let page: BatchPage = sim_get(h, "/v1/messages/batches?limit=1000").await.json().await.unwrap();
    assert!(!page.has_more);
    page.data.into_iter().map(|b| b.id).collect()
}

/// The cost of a batch's succeeded lines, read from the upstream itself.
async fn upstream_cost(h: &Harness, table: &PriceTable, id: &str, at: jiff::Timestamp) -> Money {
    let text =
        sim_get(h, &format!("/v1/messages/batches/{id}/results")).await.text().await.unwrap();
    let mut cost = Money::ZERO;
    for line in text.lines() {
        let l: ResultLine = serde_json::from_str(line).unwrap();
        if let BatchResult::Succeeded { message } = l.result {
            cost += table
                .resolve(&message.model, at)
                .unwrap()
                .cost(&TokenUsage::from_anthropic(&message.usage))
                .cost;
        }
    }
    cost
}

fn usd(v: &Value) -> Money {
    Money::parse_usd(v.as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_every_operation_never_duplicate_a_batch_and_every_batch_settles_right() {
    let mut sim = sim_config();
    let faults = Faults {
        http_500_rate: 0.1,
        http_529_rate: 0.1,
        http_429_rate: 0.1,
        retry_after_secs: 1,
        slow_rate: 0.2,
        slow_ms: 150,
        cut_results_rate: 0.4,
        create_lost_rate: 0.3,
        operations: vec![],
    };
    sim.faults = faults.clone();
    let budgets = vec![
        budget("alpha-daily", Some("alpha"), Period::Day, Money::from_usd(100)),
        budget("beta-daily", Some("beta"), Period::Day, Money::from_usd(100)),
        budget("all-daily", None, Period::Day, Money::from_usd(150)),
    ];
    let h = Arc::new(harness(budgets, Arc::new(SystemClock), sim).await);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let (project, key) = PROJECTS[i % 2];
            // Request counts repeat: recovery must tell same-sized batches apart.
            let body = batch_body(&format!("f{i:02}"), "claude-haiku-4-5", 3 + i % 3, 300);
            let (id, tries) = submit_until_ok(&h, key, &body).await;
            (project, id, tries)
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.push(t.await.unwrap());
    }
    // Whether the dice above made a client see a fault is chance (the gateway retries most
    // of them away), so one more client surely does: every create fails until it retries.
    h.sim.set_faults(Faults {
        http_500_rate: 1.0,
        operations: vec![Operation::Create],
        ..Faults::default()
    });
    let (project, key) = PROJECTS[0];
    let body = batch_body("f16", "claude-haiku-4-5", 3, 300);
    let (status, v, _) = h.submit(key, &body).await;
    assert!(status >= 500, "a create the upstream fails is passed on: {status} {v}");
    h.sim.set_faults(faults);
    let (id, tries) = submit_until_ok(&h, key, &body).await;
    accepted.push((project, id, tries + 1));
    let mut records = Vec::new();
    for (project, id, _) in &accepted {
        let rec = h.wait_settled(id).await;
        assert_eq!(rec["project"], *project, "{rec}");
        records.push(rec);
    }
    let stats = h.sim.stats();
    h.sim.set_faults(Faults::default());
    let f = &stats.faults;
    assert!(f.http_500 > 0 && f.http_529 > 0 && f.http_429 > 0, "{f:?}");
    assert!(f.slow > 0 && f.cut_results > 0 && f.create_lost > 0, "{f:?}");
    assert!(accepted.iter().any(|(_, _, tries)| *tries > 1), "some client saw a fault");
    assert_eq!(stats.creates_accepted, 17, "one upstream batch per client request");
    let mut ids: Vec<String> = accepted.iter().map(|(_, id, _)| id.clone()).collect();
    ids.sort();
    let mut upstream = upstream_ids(&h).await;
    upstream.sort();
    assert_eq!(ids, upstream, "clients hold exactly the upstream's batches");
    let table = price_table();
    let mut spent = [Money::ZERO, Money::ZERO];
    for rec in &records {
        let at: jiff::Timestamp = rec["submitted_at"].as_str().unwrap().parse().unwrap();
        let cost = upstream_cost(&h, &table, rec["id"].as_str().unwrap(), at).await;
        assert_eq!(usd(&rec["cost_usd"]), cost, "{rec}");
        spent[usize::from(rec["project"] == "beta")] += cost;
    }
    for (name, want) in
        [("alpha-daily", spent[0]), ("beta-daily", spent[1]), ("all-daily", spent[0] + spent[1])]
    {
        let b = h.budget(name).await;
        assert_eq!(usd(&b["spent_usd"]), want, "{name}: each batch settled exactly once");
        assert_eq!(b["reserved_usd"], "0", "{name}: no hold left behind");
    }
    Arc::into_inner(h).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_upstream_is_retried_after_its_retry_after_and_then_passed_on() {
    let mut sim = sim_config();
    sim.faults.retry_after_secs = 1;
    let h = harness_with(
        vec![budget("alpha-daily", Some("alpha"), Period::Day, Money::from_usd(10))],
        Arc::new(SystemClock),
        sim,
        |s| s.upstreams[0].max_attempts = 3,
    )
    .await;
    let body = batch_body("ra", "claude-haiku-4-5", 4, 200);
    let mut attempts = 0;
    for (rate_429, rate_529, status, kind) in
        [(1.0, 0.0, 429, "rate_limit_error"), (0.0, 1.0, 529, "overloaded_error")]
    {
        h.sim.set_faults(Faults {
            http_429_rate: rate_429,
            http_529_rate: rate_529,
            retry_after_secs: 1,
            operations: vec![Operation::Create],
            ..Faults::default()
        });
        let started = Instant::now();
        let (got, v, headers) = h.submit("alpha-key", &body).await;
        let waited = started.elapsed();
        assert_eq!(got, status, "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert_eq!(headers["retry-after"], "1", "the upstream's hint is passed on");
        attempts += 3;
        assert_eq!(h.sim.stats().create_attempts, attempts, "three attempts, no more");
        // Two pauses between three attempts, each at least the retry-after second.
        assert!(waited >= Duration::from_secs(2), "retry-after not honoured: {waited:?}");
        assert_eq!(h.budget("alpha-daily").await["reserved_usd"], "0", "hold released");
    }
    h.sim.set_faults(Faults::default());
    let (got, v, _) = h.submit("alpha-key", &body).await;
    assert_eq!(got, 200, "{v}");
    assert_eq!(h.sim.stats().creates_accepted, 1);
    h.wait_settled(v["id"].as_str().unwrap()).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_retrying_after_its_own_timeout_gets_the_first_batch() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    h.sim.set_faults(Faults {
        slow_rate: 1.0,
        slow_ms: 1_500,
        operations: vec![Operation::Create],
        ..Faults::default()
    });
    let body = batch_body("to", "claude-haiku-4-5", 3, 200);
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let first = impatient
        .post(format!("{}/v1/messages/batches", h.base))
        .header("x-api-key", "alpha-key")
        .json(&body)
        .send()
        .await;
    assert!(first.is_err_and(|e| e.is_timeout()));
    let (status, v, _) = h.submit("alpha-key", &body).await;
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // Two identical creates in flight at once: one upstream batch, both see it.
    let twin = batch_body("tw", "claude-haiku-4-5", 3, 200);
    let (a, b) = tokio::join!(h.submit("beta-key", &twin), h.submit("beta-key", &twin));
    assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
    assert_eq!(a.1["id"], b.1["id"]);
    h.sim.set_faults(Faults::default());
    assert_eq!(h.sim.stats().creates_accepted, 2, "one upstream batch per client request");
    h.wait_settled(&id).await;
    h.wait_settled(a.1["id"].as_str().unwrap()).await;
    h.stop().await;
}

/// An upstream in front of `sim` that acts on creates `delay` late, even after its caller
/// stopped waiting (as behind a queueing load balancer); everything else passes straight
/// through. Bound and served from synchronous code inside the runtime.
fn late_upstream(sim: String, delay: Duration) -> String {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
    let http = reqwest::Client::new();
    let proxy = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (http, sim) = (http.clone(), sim.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let late =
                parts.method == reqwest::Method::POST && parts.uri.path() == "/v1/messages/batches";
            let path =
                parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
            let mut call = http.request(parts.method.clone(), format!("{sim}{path}")).body(body);
            for (k, v) in &parts.headers {
                if k != "host" && k != "content-length" {
                    call = call.header(k, v);
                }
            }
            // Detached: the upstream acts whether or not anyone still waits for it.
            let acted = tokio::spawn(async move {
                if late {
                    tokio::time::sleep(delay).await;
                }
                let r = call.send().await.unwrap();
                let (status, headers) = (r.status(), r.headers().clone());
                (status, headers, r.bytes().await.unwrap())
            });
            let (status, headers, bytes) = acted.await.unwrap();
            let mut resp = axum::response::Response::new(axum::body::Body::from(bytes));
            *resp.status_mut() = status;
            if let Some(ct) = headers.get("content-type") {
                resp.headers_mut().insert("content-type", ct.clone());
            }
            resp
        }
    });
    tokio::spawn(async move { axum::serve(listener, proxy).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_times_out_upstream_is_found_not_forgotten() {
    let h = harness_with(
        vec![budget("alpha-daily", Some("alpha"), Period::Day, Money::from_usd(10))],
        Arc::new(SystemClock),
        sim_config(),
        |s| {
            s.upstreams[0].base_url =
                late_upstream(s.upstreams[0].base_url.clone(), Duration::from_millis(2_500));
            s.upstreams[0].timeout_secs = 1;
            // Longer than the upstream takes to act on a create.
            s.tracker.reconcile_after_secs = 4;
        },
    )
    .await;
    let body = batch_body("slow", "claude-haiku-4-5", 3, 200);
    let (status, v, _) = h.submit("alpha-key", &body).await;
    assert_eq!(status, 504, "{v}");
    // The upstream created it after the gateway stopped waiting.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.sim.stats().creates_accepted == 0 {
        assert!(Instant::now() < deadline, "the slow create never landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let upstream = upstream_ids(&h).await;
    assert_eq!(upstream.len(), 1);
    let rec = h.wait_settled(&upstream[0]).await;
    assert_eq!(rec["project"], "alpha");
    // The client's retry gets that batch, not a second one.
    let (status, v, _) = h.submit("alpha-key", &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], upstream[0].as_str());
    assert_eq!(h.sim.stats().creates_accepted, 1);
    let b = h.budget("alpha-daily").await;
    assert_eq!(b["spent_usd"], rec["cost_usd"]);
    assert_eq!(b["reserved_usd"], "0");
    h.stop().await;
}
