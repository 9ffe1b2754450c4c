//! The simulator's batch API over real HTTP: object shape, lifecycle in simulated time,
//! list pagination, cancel, delete, results, auth and the error envelope.

mod simulator_support;

use std::collections::HashSet;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use simulator_support::*;

fn ts(v: &Value) -> Timestamp {
    let s = v.as_str().unwrap();
    // RFC 3339 with exactly six fractional digits and Z, like the real API.
    assert_eq!(s.len(), "2026-01-10T08:00:00.000000Z".len(), "{s}");
    assert!(s.ends_with('Z') && s.as_bytes()[19] == b'.', "{s}");
    s.parse().unwrap()
}

#[tokio::test]
async fn a_batch_runs_in_simulated_time_and_its_counters_flip_at_the_end() {
    let sim = start().await;
    let created = sim.post("/v1/messages/batches", &body(3)).await;
    assert_eq!(created.status, 200);
    assert_eq!(created.headers["content-type"], "application/json");
    assert!(created.headers["request-id"].to_str().unwrap().starts_with("req_"));
    let b = created.json;
    let id = b["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("msgbatch_"), "{id}");
    assert_eq!(b["type"], "message_batch");
    assert_eq!(b["processing_status"], "in_progress");
    assert_eq!(
        b["request_counts"],
        json!({"processing":3,"succeeded":0,"errored":0,"canceled":0,"expired":0})
    );
    let created_at = ts(&b["created_at"]);
    assert_eq!(created_at, "2026-01-10T08:00:00Z".parse::<Timestamp>().unwrap());
    assert_eq!(ts(&b["expires_at"]), created_at + SignedDuration::from_hours(24));
    for field in ["ended_at", "archived_at", "cancel_initiated_at", "results_url"] {
        assert!(b[field].is_null(), "{field} should be null: {b}");
    }

    // 3 requests at 10/s after 60 s of startup: the end is at 60.3 s.
    sim.advance_secs(60.2);
    let mid = sim.get(&format!("/v1/messages/batches/{id}")).await.json;
    assert_eq!(mid["processing_status"], "in_progress");
    assert_eq!(mid["request_counts"]["processing"], 3);
    assert!(mid["results_url"].is_null());

    sim.advance_secs(0.1);
    let done = sim.get(&format!("/v1/messages/batches/{id}")).await.json;
    assert_eq!(done["processing_status"], "ended");
    assert_eq!(
        done["request_counts"],
        json!({"processing":0,"succeeded":3,"errored":0,"canceled":0,"expired":0})
    );
    assert_eq!(ts(&done["ended_at"]), created_at + SignedDuration::from_millis(60_300));
    assert_eq!(
        done["results_url"],
        format!("{}/v1/messages/batches/{id}/results", sim.handle.base_url())
    );
    assert!(done["results_url"].as_str().unwrap().starts_with("http://127.0.0.1:"));

    let (headers, text) = sim.results(&id).await;
    assert_eq!(headers["content-type"], "application/x-jsonl");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename*=utf-8''{id}_results.jsonl")
    );
    assert!(text.ends_with('\n') && !text.contains("\n\n"), "no blank lines");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: HashSet<&str> = lines.iter().map(|l| l["custom_id"].as_str().unwrap()).collect();
    assert_eq!(ids, HashSet::from(["req-0", "req-1", "req-2"]));
    for l in &lines {
        let m = &l["result"]["message"];
        assert_eq!(l["result"]["type"], "succeeded");
        assert!(m["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!((m["type"].as_str(), m["role"].as_str()), (Some("message"), Some("assistant")));
        assert_eq!(m["model"], "claude-sonnet-4-6");
        let u = &m["usage"];
        assert_eq!(u["service_tier"], "batch");
        let out = u["output_tokens"].as_u64().unwrap();
        assert!((1..=256).contains(&out));
        assert_eq!(m["stop_reason"], if out == 256 { "max_tokens" } else { "end_turn" });
        assert!(u["input_tokens"].as_u64().unwrap() > 3);
        assert_eq!(u["cache_read_input_tokens"], 0);
        assert_eq!(
            u["cache_creation"],
            json!({"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0})
        );
    }
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn list_pages_newest_first_with_cursors_and_checks_limit() {
    let sim = start().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(sim.create(&body(1)).await["id"].as_str().unwrap().to_string());
        sim.advance_secs(1.0);
    }
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    loop {
        let page = sim.get(&format!("/v1/messages/batches?{query}")).await.json;
        let data: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().into())
            .collect();
        assert_eq!(page["first_id"].as_str(), data.first().map(String::as_str));
        assert_eq!(page["last_id"].as_str(), data.last().map(String::as_str));
        seen.extend(data);
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
        query = format!("limit=2&after_id={}", page["last_id"].as_str().unwrap());
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let back = sim.get(&format!("/v1/messages/batches?limit=2&before_id={}", ids[1])).await.json;
    let data: Vec<&str> =
        back["data"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(data, vec![ids[3].as_str(), ids[2].as_str()]);
    assert_eq!(back["has_more"], true);

    let all = sim.get("/v1/messages/batches?beta=true").await.json;
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
    assert_eq!(all["has_more"], false);
    for bad in ["limit=0", "limit=1001", "limit=ten"] {
        let r = sim.get(&format!("/v1/messages/batches?{bad}")).await;
        assert!(assert_envelope(&r, 400, "invalid_request_error").starts_with("limit:"));
    }
    let empty = start().await.get("/v1/messages/batches").await.json;
    assert_eq!(empty, json!({"data":[],"has_more":false,"first_id":null,"last_id":null}));
}

#[tokio::test]
async fn cancel_goes_through_canceling_and_in_flight_requests_still_succeed() {
    let sim = start().await;
    let id = sim.create(&body(100)).await["id"].as_str().unwrap().to_string();
    sim.advance_secs(62.0);
    let r = sim.post(&format!("/v1/messages/batches/{id}/cancel"), &Value::Null).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["processing_status"], "canceling");
    assert_eq!(r.json["request_counts"]["processing"], 100);
    assert_eq!(r.json["cancel_initiated_at"], "2026-01-10T08:01:02.000000Z");
    assert!(r.json["results_url"].is_null());
    sim.advance_secs(1.0);
    let b = sim.get(&format!("/v1/messages/batches/{id}")).await.json;
    assert_eq!(b["processing_status"], "ended");
    // Completed by cancel + 1 s grace (63 s): requests 1..=30.
    assert_eq!(
        b["request_counts"],
        json!({"processing":0,"succeeded":30,"errored":0,"canceled":70,"expired":0})
    );
    let lines = sim.results_lines(&id).await;
    let canceled = lines.iter().filter(|l| l["result"] == json!({"type":"canceled"})).count();
    assert_eq!((lines.len(), canceled), (100, 70));
    // Cancel on an ended batch returns it unchanged.
    let again = sim.post(&format!("/v1/messages/batches/{id}/cancel"), &Value::Null).await;
    assert_eq!(again.json, b);
}

#[tokio::test]
async fn delete_is_refused_while_processing_and_works_after_the_end() {
    let sim = start().await;
    let id = sim.create(&body(2)).await["id"].as_str().unwrap().to_string();
    let r = sim.delete(&format!("/v1/messages/batches/{id}")).await;
    assert!(assert_envelope(&r, 400, "invalid_request_error").contains("cancel it first"));
    sim.advance_secs(61.0);
    let r = sim.delete(&format!("/v1/messages/batches/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, json!({"id": id, "type": "message_batch_deleted"}));
    let r = sim.get(&format!("/v1/messages/batches/{id}")).await;
    assert_envelope(&r, 404, "not_found_error");
    let r = sim.get(&format!("/v1/messages/batches/{id}/results")).await;
    assert_envelope(&r, 404, "not_found_error");
}

#[tokio::test]
async fn unfinished_requests_expire_at_24_hours_and_results_vanish_after_29_days() {
    let clock = start_clock();
    let cfg = batchcost::simulator::SimConfig {
        requests_per_second: 1.0 / 3600.0,
        startup_secs: 0.0,
        ..config(&clock)
    };
    let sim = start_with(cfg, clock).await;
    let id = sim.create(&body(30)).await["id"].as_str().unwrap().to_string();
    sim.advance_secs(24.0 * 3600.0 - 1.0);
    assert_eq!(
        sim.get(&format!("/v1/messages/batches/{id}")).await.json["processing_status"],
        "in_progress"
    );
    sim.advance_secs(1.0);
    let b = sim.get(&format!("/v1/messages/batches/{id}")).await.json;
    assert_eq!(b["processing_status"], "ended");
    assert_eq!(b["ended_at"], b["expires_at"]);
    assert_eq!(
        b["request_counts"],
        json!({"processing":0,"succeeded":24,"errored":0,"canceled":0,"expired":6})
    );
    let lines = sim.results_lines(&id).await;
    assert_eq!(lines.iter().filter(|l| l["result"] == json!({"type":"expired"})).count(), 6);

    sim.advance_secs(28.0 * 86400.0);
    let b = sim.get(&format!("/v1/messages/batches/{id}")).await.json;
    assert_eq!(b["archived_at"], "2026-02-08T08:00:00.000000Z");
    let url = b["results_url"].as_str().unwrap().to_string();
    let r = sim.send(sim.http.get(url)).await;
    assert!(assert_envelope(&r, 404, "not_found_error").contains("archived"));
}

#[tokio::test]
async fn auth_accepts_either_header_and_the_envelope_carries_the_request_id() {
    let sim = start().await;
    let url = sim.url("/v1/messages/batches");
    let plain = |rb: reqwest::RequestBuilder| async {
        rb.header("anthropic-version", "2023-06-01").send().await.unwrap()
    };
    let r = plain(sim.http.get(&url)).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"],
        json!({"type":"authentication_error","message":"x-api-key header is required"})
    );
    let r = plain(sim.http.get(&url).header("x-api-key", "wrong")).await;
    assert_eq!(r.status(), 401);
    assert!(!r.text().await.unwrap().contains(KEY), "the key never appears in answers");
    assert_eq!(plain(sim.http.get(&url).bearer_auth(KEY)).await.status(), 200);
    assert_eq!(plain(sim.http.get(&url).header("x-api-key", KEY)).await.status(), 200);
    let beta = sim
        .http
        .get(format!("{url}?beta=true"))
        .header("x-api-key", KEY)
        .header("anthropic-beta", "message-batches-2024-09-24");
    assert_eq!(plain(beta).await.status(), 200);
    let r = sim.http.get(&url).header("x-api-key", KEY).send().await.unwrap();
    assert_eq!(r.status(), 400, "anthropic-version is required");
    assert_eq!(sim.handle.stats().auth_failures, 2);

    let r = sim.get("/v1/messages/batches/msgbatch_nope").await;
    assert!(assert_envelope(&r, 404, "not_found_error").contains("msgbatch_nope"));
    assert_envelope(&sim.get("/v1/nothing-here").await, 404, "not_found_error");
    let r = sim.send(sim.http.put(sim.url("/v1/messages/batches"))).await;
    assert_envelope(&r, 405, "invalid_request_error");
}

#[tokio::test]
async fn count_tokens_uses_the_simulator_tokenizer() {
    let sim = start().await;
    let r = sim
        .post(
            "/v1/messages/count_tokens",
            &json!({"model":"claude-sonnet-4-6",
        "messages":[{"role":"user","content":"Hello world"}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    // 3 per request + 3 per message + 2 words.
    assert_eq!(r.json, json!({"input_tokens": 8}));
    let r = sim
        .post(
            "/v1/messages/count_tokens",
            &json!({"model":"claude-nope","messages":[{"role":"user","content":"x"}]}),
        )
        .await;
    assert_envelope(&r, 404, "not_found_error");
    let r = sim.post("/v1/messages/count_tokens", &json!({"model":"claude-sonnet-4-6"})).await;
    assert_eq!(assert_envelope(&r, 400, "invalid_request_error"), "messages: Field required");
}
