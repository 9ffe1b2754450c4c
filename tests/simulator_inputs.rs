//! What the simulator refuses, what it injects, and what it computes: invalid creates,
//! the 256 MB limit, faults at rate 1, deterministic usage and the prompt cache.

mod simulator_support;

use batchcost::simulator::{Faults, Operation, SimConfig};
use bytes::Bytes;
use serde_json::{Value, json};
use simulator_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn refused(
    sim: &Sim,
    body: impl Into<reqwest::Body>,
    status: u16,
    error_type: &str,
) -> String {
    let r = sim.post_raw("/v1/messages/batches", body).await;
    assert_envelope(&r, status, error_type)
}

#[tokio::test]
async fn invalid_creates_get_the_documented_status_and_envelope() {
    let sim = start().await;
    let req = |id: &str| request(id, "hi", 10);
    let cases: Vec<(String, &str)> = vec![
        (
            json!({"requests": []}).to_string(),
            "requests: List should have at least 1 item after validation, not 0",
        ),
        (
            json!({"requests": [req("a"), req("b"), req("a")]}).to_string(),
            "requests.2.custom_id: Duplicate custom_id 'a'",
        ),
        (
            json!({"requests": [req("has space")]}).to_string(),
            "requests.0.custom_id: String should match pattern",
        ),
        (
            json!({"requests": [req(&"x".repeat(65))]}).to_string(),
            "requests.0.custom_id: String should match pattern",
        ),
        (
            json!({"requests": [req("")]}).to_string(),
            "requests.0.custom_id: String should match pattern",
        ),
        (
            json!({"requests": [{"custom_id": 5, "params": {}}]}).to_string(),
            "requests.0.custom_id: Input should be a valid string",
        ),
        (
            json!({"requests": [{"custom_id": "a", "params": "x"}]}).to_string(),
            "requests.0.params: Input should be a valid dictionary",
        ),
        (
            json!({"requests": "all of them"}).to_string(),
            "Malformed JSON body: invalid type: string \"all of them\", expected `requests` to be a list",
        ),
        (
            json!({"requests": [req("a")], "extra": 1}).to_string(),
            "extra: Extra inputs are not permitted",
        ),
        ("{\"requests\": [".to_string(), "Malformed JSON body: EOF while parsing"),
        ("not json".to_string(), "Malformed JSON body: expected ident"),
    ];
    for (body, prefix) in cases {
        let m = refused(&sim, body.clone(), 400, "invalid_request_error").await;
        assert!(m.starts_with(prefix), "{body:.80}: {m}");
    }
    assert_eq!(sim.handle.stats().creates_accepted, 0);
    assert_eq!(sim.get("/v1/messages/batches").await.json["data"], json!([]));
}

#[tokio::test]
async fn a_hundred_thousand_requests_are_accepted_and_one_more_is_refused() {
    let sim = start().await;
    let line = |i: usize| {
        format!(
            r#"{{"custom_id":"r{i}","params":{{"model":"claude-haiku-4-5","max_tokens":8,"messages":[{{"role":"user","content":"q{i}"}}]}}}}"#
        )
    };
    let make = |n: usize| {
        let parts: Vec<String> = (0..n).map(line).collect();
        format!(r#"{{"requests":[{}]}}"#, parts.join(","))
    };
    let m = refused(&sim, make(100_001), 400, "invalid_request_error").await;
    assert_eq!(m, "requests: List should have at most 100000 items after validation, not 100001");
    let r = sim.post_raw("/v1/messages/batches", make(100_000)).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["request_counts"]["processing"], 100_000);
    // 100,000 requests at 10/s end 10,060 s later.
    sim.advance_secs(10_060.0);
    let id = r.json["id"].as_str().unwrap();
    let (_, text) = sim.results(id).await;
    assert_eq!(text.lines().count(), 100_000);
}

#[tokio::test]
async fn bodies_over_256_mb_are_413_by_header_or_while_streaming() {
    let sim = start().await;
    // A header claiming more than the limit: answered without the body being stored.
    let mut s = tokio::net::TcpStream::connect(sim.handle.addr()).await.unwrap();
    let head = format!(
        "POST /v1/messages/batches HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-api-key: {KEY}\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{\"requests\":[",
        257 * 1024 * 1024
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    assert!(answer.contains(r#""type":"request_too_large""#), "{answer}");

    // A chunked body that grows past the limit: the same 1 MiB buffer 257 times.
    let chunk = Bytes::from(vec![b' '; 1024 * 1024]);
    let chunks = std::iter::once(Bytes::from_static(b"{\"requests\":["))
        .chain(std::iter::repeat_n(chunk, 257));
    let stream = futures_util::stream::iter(chunks.map(Ok::<_, std::io::Error>));
    let m = refused(&sim, reqwest::Body::wrap_stream(stream), 413, "request_too_large").await;
    assert!(m.contains("256 MB"), "{m}");
    assert_eq!(sim.handle.stats().creates_accepted, 0);
}

#[tokio::test]
async fn bad_params_are_accepted_and_come_back_as_errored_lines() {
    let sim = start().await;
    let ok = request("ok", "hi", 10);
    let body = json!({"requests": [
        ok,
        {"custom_id": "no-max", "params": {"model": "claude-sonnet-4-6", "messages": [{"role":"user","content":"x"}]}},
        {"custom_id": "zero-max", "params": {"model": "claude-sonnet-4-6", "max_tokens": 0, "messages": [{"role":"user","content":"x"}]}},
        {"custom_id": "no-model", "params": {"model": "claude-nope", "max_tokens": 5, "messages": [{"role":"user","content":"x"}]}},
        {"custom_id": "no-msgs", "params": {"model": "claude-sonnet-4-6", "max_tokens": 5}},
    ]});
    let id = sim.create(&body).await["id"].as_str().unwrap().to_string();
    sim.advance_secs(61.0);
    let b = sim.get(&format!("/v1/messages/batches/{id}")).await.json;
    assert_eq!(b["request_counts"]["errored"], 4);
    let lines = sim.results_lines(&id).await;
    let error_of = |cid: &str| {
        let l = lines.iter().find(|l| l["custom_id"] == cid).unwrap();
        assert_eq!(l["result"]["type"], "errored");
        assert_eq!(l["result"]["error"]["type"], "error");
        (
            l["result"]["error"]["error"]["type"].as_str().unwrap().to_string(),
            l["result"]["error"]["error"]["message"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        error_of("no-max"),
        ("invalid_request_error".into(), "max_tokens: Field required".into())
    );
    assert_eq!(error_of("zero-max").0, "invalid_request_error");
    assert_eq!(error_of("no-model"), ("not_found_error".into(), "model: claude-nope".into()));
    assert_eq!(
        error_of("no-msgs"),
        ("invalid_request_error".into(), "messages: Field required".into())
    );
}

#[tokio::test]
async fn faults_at_rate_one_answer_errors_and_change_nothing() {
    let sim = start().await;
    for (faults, status, error_type) in [
        (Faults { http_500_rate: 1.0, ..Faults::default() }, 500, "api_error"),
        (
            Faults { http_529_rate: 1.0, retry_after_secs: 7, ..Faults::default() },
            529,
            "overloaded_error",
        ),
        (
            Faults { http_429_rate: 1.0, retry_after_secs: 3, ..Faults::default() },
            429,
            "rate_limit_error",
        ),
    ] {
        let retry = faults.retry_after_secs;
        sim.handle.set_faults(faults);
        let r = sim.post("/v1/messages/batches", &body(2)).await;
        assert_envelope(&r, status, error_type);
        if status != 500 {
            assert_eq!(r.headers["retry-after"], retry.to_string().as_str());
        }
        let r = sim.get("/v1/messages/batches").await;
        assert_envelope(&r, status, error_type);
    }
    sim.handle.set_faults(Faults::default());
    assert_eq!(
        sim.get("/v1/messages/batches").await.json["data"],
        json!([]),
        "a faulted create creates nothing"
    );
    let s = sim.handle.stats();
    assert_eq!((s.faults.http_500, s.faults.http_529, s.faults.http_429), (2, 2, 2));
    assert_eq!((s.create_attempts, s.creates_accepted), (3, 0));

    // Faults aimed at one operation leave the others alone.
    sim.handle.set_faults(Faults {
        http_500_rate: 1.0,
        operations: vec![Operation::List],
        ..Faults::default()
    });
    assert_eq!(sim.post("/v1/messages/batches", &body(1)).await.status, 200);
    assert_eq!(sim.get("/v1/messages/batches").await.status, 500);
}

#[tokio::test]
async fn a_lost_create_answer_still_creates_the_batch() {
    let sim = start().await;
    sim.handle.set_faults(Faults { create_lost_rate: 1.0, ..Faults::default() });
    let r = sim.post("/v1/messages/batches", &body(2)).await;
    assert_envelope(&r, 500, "api_error");
    sim.handle.set_faults(Faults::default());
    let page = sim.get("/v1/messages/batches").await.json;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "the batch exists upstream");
    let s = sim.handle.stats();
    assert_eq!((s.creates_accepted, s.faults.create_lost), (1, 1));
}

#[tokio::test]
async fn a_cut_results_stream_ends_mid_line_with_a_broken_body() {
    let sim = start().await;
    let id = sim.create(&body(2000)).await["id"].as_str().unwrap().to_string();
    sim.advance_secs(300.0);
    let url = sim.get(&format!("/v1/messages/batches/{id}")).await.json["results_url"]
        .as_str()
        .unwrap()
        .to_string();
    sim.handle.set_faults(Faults { cut_results_rate: 1.0, ..Faults::default() });
    let mut resp = sim
        .http
        .get(&url)
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = Vec::new();
    let outcome = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(outcome.is_err(), "the body must fail, not end cleanly");
    assert!(!got.ends_with(b"\n"), "cut in the middle of a line");
    let whole = got.iter().filter(|&&b| b == b'\n').count();
    assert!(whole < 2000);
    assert_eq!(sim.handle.stats().faults.cut_results, 1);
    sim.handle.set_faults(Faults::default());
    assert_eq!(sim.results(&id).await.1.lines().count(), 2000, "the next download is whole");
}

#[tokio::test]
async fn slow_answers_are_counted() {
    let sim = start().await;
    sim.handle.set_faults(Faults { slow_rate: 1.0, slow_ms: 20, ..Faults::default() });
    let started = std::time::Instant::now();
    assert_eq!(sim.get("/v1/messages/batches").await.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(20));
    assert_eq!(sim.handle.stats().faults.slow, 1);
}

async fn results_of_a_fresh_simulator(seed: u64) -> String {
    let clock = start_clock();
    let sim = start_with(SimConfig { seed, errored_fraction: 0.1, ..config(&clock) }, clock).await;
    let id = sim.create(&body(500)).await["id"].as_str().unwrap().to_string();
    sim.advance_secs(200.0);
    let text = sim.results(&id).await.1;
    // A second download of the same batch is identical too.
    assert_eq!(text, sim.results(&id).await.1);
    text
}

#[tokio::test]
async fn the_same_seed_gives_the_same_bytes() {
    let a = results_of_a_fresh_simulator(7).await;
    let b = results_of_a_fresh_simulator(7).await;
    let c = results_of_a_fresh_simulator(8).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let errored = a.lines().filter(|l| l.contains(r#""type":"errored""#)).count();
    assert!((25..=80).contains(&errored), "about 10% errored: {errored}");
}

#[tokio::test]
async fn a_second_batch_with_the_same_prefix_reads_the_cache() {
    let sim = start().await;
    let system = "You are a meticulous reviewer of quarterly financial statements. ".repeat(120);
    let req = |cid: &str, q: &str| {
        json!({"custom_id": cid, "params": {"model": "claude-sonnet-4-6", "max_tokens": 50,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [{"role": "user", "content": q}]}})
    };
    let usage_of = |lines: &[Value], cid: &str| {
        lines.iter().find(|l| l["custom_id"] == cid).unwrap()["result"]["message"]["usage"].clone()
    };

    let first = sim
        .create(&json!({"requests": [req("a", "First question?"), req("b", "Second one?")]}))
        .await;
    sim.advance_secs(61.0);
    let lines = sim.results_lines(first["id"].as_str().unwrap()).await;
    let (a, b) = (usage_of(&lines, "a"), usage_of(&lines, "b"));
    let prefix = a["cache_creation"]["ephemeral_1h_input_tokens"].as_u64().unwrap();
    assert!(prefix >= 1024, "the system prompt is cacheable: {a}");
    assert_eq!(a["cache_creation_input_tokens"].as_u64().unwrap(), prefix);
    assert_eq!(a["cache_read_input_tokens"], 0);
    assert_eq!(
        b["cache_read_input_tokens"].as_u64().unwrap(),
        prefix,
        "later in the same batch: a read"
    );
    assert_eq!(b["cache_creation_input_tokens"], 0);

    // Half an hour later, inside the 1 h TTL: a second batch reads the cache.
    sim.advance_secs(1800.0);
    let second = sim.create(&json!({"requests": [req("c", "First question?")]})).await;
    sim.advance_secs(61.0);
    let c = usage_of(&sim.results_lines(second["id"].as_str().unwrap()).await, "c");
    assert_eq!(c["cache_read_input_tokens"].as_u64().unwrap(), prefix);
    assert_eq!(c["input_tokens"], a["input_tokens"], "same question, same fresh input");
    let total = |u: &Value| {
        ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
            .iter()
            .map(|k| u[*k].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(total(&a), total(&c), "total input = fresh + written + read");

    // Two hours later the entry has expired: written again.
    sim.advance_secs(7200.0);
    let third = sim.create(&json!({"requests": [req("d", "First question?")]})).await;
    sim.advance_secs(61.0);
    let d = usage_of(&sim.results_lines(third["id"].as_str().unwrap()).await, "d");
    assert_eq!(d["cache_creation"]["ephemeral_1h_input_tokens"].as_u64().unwrap(), prefix);
}

#[tokio::test]
async fn web_search_and_inference_geo_show_in_usage() {
    let sim = start().await;
    let body = json!({"requests": [{"custom_id": "w", "params": {"model": "claude-sonnet-4-6", "max_tokens": 20,
        "inference_geo": "us", "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
        "messages": [{"role": "user", "content": "What happened today?"}]}}]});
    let id = sim.create(&body).await["id"].as_str().unwrap().to_string();
    sim.advance_secs(61.0);
    let usage = sim.results_lines(&id).await[0]["result"]["message"]["usage"].clone();
    let searches = usage["server_tool_use"]["web_search_requests"].as_u64().unwrap();
    assert!((1..=2).contains(&searches), "{usage}");
    assert_eq!(usage["inference_geo"], "us");
}
