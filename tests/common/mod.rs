//! Test harness: the simulator and a gateway, both in-process on port 0, with a fresh
//! ledger (SQLite, or PostgreSQL with `BATCHCOST_TEST_STORAGE=postgres`) and an injectable
//! clock.
#![allow(dead_code)]

#[path = "../storage_support/mod.rs"]
pub mod storage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcost::clock::Clock;
use batchcost::config::{
    Budget, Limits, Period, Secret, Server, Settings, Tracker, UpstreamSettings,
};
use batchcost::gateway::{App, Running, start};
use batchcost::money::Money;
use batchcost::simulator::{SimConfig, SimHandle, spawn};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const ADMIN: &str = "harness-admin-token";
pub const PROVIDER: &str = "harness-provider-key";
pub const PROJECTS: [(&str, &str); 2] = [("alpha", "alpha-key"), ("beta", "beta-key")];

pub struct Harness {
    pub sim: SimHandle,
    pub gw: Running,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// Declared after `gw`: dropped once the gateway is gone.
    pub db: storage::TestDb,
}

pub fn budget(name: &str, project: Option<&str>, period: Period, limit: Money) -> Budget {
    Budget {
        name: name.into(),
        project: project.map(str::to_string),
        period,
        limit: Some(limit),
        limit_input_tokens: None,
        limit_output_tokens: None,
        alert_at: vec![0.5, 1.0],
        policy: Default::default(),
        provider: None,
        models: None,
    }
}

pub fn sim_config() -> SimConfig {
    SimConfig { api_key: PROVIDER.into(), time_scale: 3600.0, seed: 11, ..Default::default() }
}

pub async fn harness(budgets: Vec<Budget>, clock: Arc<dyn Clock>, sim: SimConfig) -> Harness {
    harness_with(budgets, clock, sim, |_| {}).await
}

/// [`harness`] with the gateway's settings adjusted by `tweak` before it starts.
pub async fn harness_with(
    budgets: Vec<Budget>,
    clock: Arc<dyn Clock>,
    sim: SimConfig,
    tweak: impl FnOnce(&mut Settings),
) -> Harness {
    let sim = spawn(sim, TcpListener::bind("127.0.0.1:0").await.unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = storage::TestDb::fresh(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = Settings {
        config_path: PathBuf::from("(test)"),
        listen: addr,
        public_url: format!("http://{addr}"),
        pricing_path: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"),
        timezone: jiff::tz::TimeZone::get("Asia/Seoul").unwrap(),
        timezone_name: "Asia/Seoul".into(),
        storage_url: db.url.clone(),
        durability: Default::default(),
        upstreams: vec![UpstreamSettings {
            name: "anthropic".into(),
            kind: "anthropic".into(),
            base_url: sim.base_url(),
            key: Secret::new(PROVIDER),
            timeout_secs: 30,
            max_attempts: 4,
        }],
        projects: PROJECTS.iter().map(|(p, k)| (p.to_string(), vec![Secret::new(*k)])).collect(),
        budgets,
        admin_token: Secret::new(ADMIN),
        scoped_tokens: Default::default(),
        workflow: Default::default(),
        tracker: Tracker {
            poll_min_ms: 50,
            poll_max_ms: 500,
            reconcile_after_secs: 1,
            lease_secs: 3,
        },
        limits: Limits::default(),
        server: Server::default(),
    };
    let mut settings = settings;
    tweak(&mut settings);
    let app = App::build(settings, clock).await.unwrap();
    let gw = start(app, listener).await.unwrap();
    Harness { sim, base: format!("http://{addr}"), gw, http: reqwest::Client::new(), dir, db }
}

/// A create body of `n` requests on `model`, distinct by `tag`.
pub fn batch_body(tag: &str, model: &str, n: usize, max_tokens: u32) -> Value {
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            json!({"custom_id": format!("{tag}-{i}"), "params": {
                "model": model, "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": format!("Summarise item {i} of batch {tag} in one line.")}]
            }})
        })
        .collect();
    json!({ "requests": requests })
}

/// Who a request to the gateway is sent as.
#[derive(Clone, Copy)]
pub enum As<'a> {
    /// The admin token, as a bearer token.
    Admin,
    /// A project's API key (or any string, to see it refused).
    Key(&'a str),
}

impl Harness {
    pub async fn submit(
        &self,
        key: &str,
        body: &Value,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = self
            .http
            .post(format!("{}/v1/messages/batches", self.base))
            .header("x-api-key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, r.json().await.unwrap(), headers)
    }

    /// `GET path` on the gateway, sent as `who`.
    pub async fn get(&self, path: &str, who: As<'_>) -> reqwest::Response {
        let req = self.http.get(format!("{}{path}", self.base));
        let req = match who {
            As::Key(key) => req.header("x-api-key", key),
            As::Admin => req.bearer_auth(ADMIN),
        };
        req.send().await.unwrap()
    }

    /// A batch's results JSONL, fetched through the gateway as `key`'s project.
    pub async fn results(&self, key: &str, id: &str) -> String {
        let path = format!("/v1/messages/batches/{id}/results");
        self.get(&path, As::Key(key)).await.text().await.unwrap()
    }

    pub async fn admin(&self, path: &str) -> Value {
        self.get(path, As::Admin).await.json().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics", As::Admin).await.text().await.unwrap()
    }

    /// Polls the ledger record until settled (bounded).
    pub async fn wait_settled(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.admin(&format!("/api/batches/{id}")).await;
            if v["status"] == "settled" {
                return v;
            }
            assert!(Instant::now() < deadline, "batch {id} did not settle: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn budget(&self, name: &str) -> Value {
        let all = self.admin("/api/budgets").await;
        all["budgets"].as_array().unwrap().iter().find(|b| b["name"] == name).cloned().unwrap()
    }

    pub async fn stop(self) {
        self.gw.shutdown().await;
        self.sim.shutdown().await;
    }
}

/// Sum of a metric's samples whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
