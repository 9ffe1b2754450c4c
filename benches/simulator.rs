//! Simulator scaling benchmark (issue 17: "calls cost the same with 100,000 batches held
//! as with 10"). Run: `cargo bench --bench simulator` (a measurement, not a test).
//!
//! Starts the simulator in-process with simulated time frozen, holds 10 batches, measures
//! call rates over loopback HTTP (4 concurrent clients), fills it to 100,000 batches and
//! measures again: create, retrieve, list (first page and a deep `after_id` page) and a
//! results download. Prints each rate at both sizes and their ratio; the target is a
//! ratio within 0.8..1.25 for create and retrieve.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use batchcost::simulator::{SimConfig, spawn};
use jiff::SignedDuration;

const KEY: &str = "bench-sim-key";
const WORKERS: usize = 4;
const OPS: u64 = 6_000;
const BODY: &str = r#"{"requests":[{"custom_id":"a","params":{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user","content":"Hello there"}]}}]}"#;

struct Target {
    http: reqwest::Client,
    base: String,
}

impl Target {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
    }

    async fn create(&self) -> String {
        let r = self
            .req(reqwest::Method::POST, "/v1/messages/batches")
            .header("content-type", "application/json")
            .body(BODY)
            .send()
            .await
            .expect("create");
        assert!(r.status().is_success(), "create: {}", r.status());
        let v: serde_json::Value = r.json().await.expect("create body");
        v["id"].as_str().expect("id").to_string()
    }

    async fn ok(&self, path: &str) -> usize {
        let r = self.req(reqwest::Method::GET, path).send().await.expect("get");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.bytes().await.expect("body").len()
    }
}

/// Runs `op(i)` OPS times over WORKERS concurrent tasks; calls per second.
async fn rate<F, Fut>(t: &Arc<Target>, op: F) -> f64
where
    F: Fn(Arc<Target>, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (t, next, op) = (t.clone(), next.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= OPS {
                    break;
                }
                op(t.clone(), i).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    OPS as f64 / start.elapsed().as_secs_f64()
}

/// Reads first (at exactly the number held), creates last (starting from it).
async fn measure(t: &Arc<Target>, ended: &Arc<Vec<String>>) -> [f64; 5] {
    let ids = ended.clone();
    let retrieve = rate(t, move |t, i| {
        let id = ids[(i as usize * 7919) % ids.len()].clone();
        async move {
            t.ok(&format!("/v1/messages/batches/{id}")).await;
        }
    })
    .await;
    let list = rate(t, |t, _| async move {
        t.ok("/v1/messages/batches?limit=20").await;
    })
    .await;
    let ids = ended.clone();
    let deep = rate(t, move |t, i| {
        let id = ids[(i as usize * 104_729) % ids.len()].clone();
        async move {
            t.ok(&format!("/v1/messages/batches?limit=20&after_id={id}")).await;
        }
    })
    .await;
    let ids = ended.clone();
    let results = rate(t, move |t, i| {
        let id = ids[(i as usize * 31) % ids.len()].clone();
        async move {
            t.ok(&format!("/v1/messages/batches/{id}/results")).await;
        }
    })
    .await;
    let create = rate(t, |t, _| async move {
        t.create().await;
    })
    .await;
    [create, retrieve, list, deep, results]
}

async fn fill(t: &Arc<Target>, ids: &mut Vec<String>, upto: usize) {
    let need = upto.saturating_sub(ids.len());
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let t = t.clone();
        let share = need / WORKERS + usize::from(w < need % WORKERS);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(share);
            for _ in 0..share {
                mine.push(t.create().await);
            }
            mine
        }));
    }
    for task in tasks {
        ids.extend(task.await.expect("filler"));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = SimConfig { api_key: KEY.into(), time_scale: 0.0, ..SimConfig::default() };
    let sim = spawn(config, listener).await.expect("spawn");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(WORKERS * 2)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let t = Arc::new(Target { http, base: sim.base_url() });
    let mut ids = Vec::new();

    fill(&t, &mut ids, 10).await;
    sim.advance(SignedDuration::from_hours(1));
    let held_small = sim.stats().live_batches;
    let small = measure(&t, &Arc::new(ids.clone())).await;

    let started = Instant::now();
    ids.clear();
    fill(&t, &mut ids, 100_000 - sim.stats().live_batches as usize).await;
    let fill_secs = started.elapsed().as_secs_f64();
    sim.advance(SignedDuration::from_hours(1));
    let held_large = sim.stats().live_batches;
    let large = measure(&t, &Arc::new(ids.clone())).await;

    println!("simulator scaling, {WORKERS} clients, {OPS} calls per measure (calls/s)");
    println!("filled to 100,000 batches in {fill_secs:.1} s");
    println!(
        "{:<28} {:>14} {:>14} {:>8}",
        "measure",
        format!("{held_small} held"),
        format!("{held_large} held"),
        "ratio"
    );
    let names = ["create", "retrieve", "list (first page)", "list (deep after_id)", "results"];
    for (i, name) in names.iter().enumerate() {
        println!("{:<28} {:>14.0} {:>14.0} {:>8.2}", name, small[i], large[i], large[i] / small[i]);
    }
    sim.shutdown().await;
}
