//! Shared helpers of the simulator integration tests: a simulator on port 0 whose time
//! moves only when the test advances its base clock, and a small JSON client.
#![allow(dead_code)]

use std::sync::Arc;

use batchcost::clock::ManualClock;
use batchcost::simulator::{BaseClock, SimConfig, SimHandle, spawn};
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub const KEY: &str = "test-key-123";

pub struct Sim {
    pub handle: SimHandle,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

/// A config whose simulated time runs 1:1 with a manual clock starting at a fixed instant.
pub fn config(clock: &Arc<ManualClock>) -> SimConfig {
    SimConfig {
        api_key: KEY.into(),
        time_scale: 1.0,
        seed: 42,
        requests_per_second: 10.0,
        startup_secs: 60.0,
        cancel_grace_secs: 1.0,
        clock: BaseClock(clock.clone()),
        ..SimConfig::default()
    }
}

pub fn start_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new("2026-01-10T08:00:00Z".parse::<Timestamp>().unwrap()))
}

pub async fn start() -> Sim {
    let clock = start_clock();
    start_with(config(&clock), clock).await
}

pub async fn start_with(cfg: SimConfig, clock: Arc<ManualClock>) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = spawn(cfg, listener).await.unwrap();
    Sim { handle, clock, http: reqwest::Client::new() }
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    pub fn advance_secs(&self, secs: f64) {
        self.clock.advance(SignedDuration::try_from_secs_f64(secs).unwrap());
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        rb.header("x-api-key", KEY).header("anthropic-version", "2023-06-01")
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let resp = self.authed(rb).send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, json }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let rb = self.http.post(self.url(path)).header("content-type", "application/json");
        self.send(rb.body(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.url(path))).await
    }

    pub async fn create(&self, body: &Value) -> Value {
        let r = self.post("/v1/messages/batches", body).await;
        assert_eq!(r.status, 200, "{}", r.json);
        r.json
    }

    /// The results body as text, fetched from the batch's `results_url`.
    pub async fn results(&self, id: &str) -> (reqwest::header::HeaderMap, String) {
        let batch = self.get(&format!("/v1/messages/batches/{id}")).await.json;
        let url = batch["results_url"].as_str().expect("results_url once ended").to_string();
        let resp = self.authed(self.http.get(url)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let headers = resp.headers().clone();
        (headers, resp.text().await.unwrap())
    }

    pub async fn results_lines(&self, id: &str) -> Vec<Value> {
        let (_, text) = self.results(id).await;
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

/// One request with a user message.
pub fn request(custom_id: &str, text: &str, max_tokens: u64) -> Value {
    json!({"custom_id": custom_id, "params": {"model": "claude-sonnet-4-6", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}]}})
}

pub fn body(n: usize) -> Value {
    json!({"requests": (0..n).map(|i| request(&format!("req-{i}"), &format!("Question number {i}?"), 256)).collect::<Vec<_>>()})
}

/// Checks the error envelope and that its request id matches the header.
pub fn assert_envelope(r: &Reply, status: u16, error_type: &str) -> String {
    assert_eq!(r.status.as_u16(), status, "{}", r.json);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.json["type"], "error", "{}", r.json);
    assert_eq!(r.json["error"]["type"], error_type, "{}", r.json);
    let rid = r.headers["request-id"].to_str().unwrap();
    assert!(rid.starts_with("req_"));
    assert_eq!(r.json["request_id"], rid);
    r.json["error"]["message"].as_str().unwrap().to_string()
}
