//! Simulator scaling benchmark (issue 17: "calls cost the same with 100,000 batches held
//! as with 10"). Run: `cargo bench --bench simulator` (a measurement, not a test).
//!
//! Starts `batchcost simulate` (the release binary, its own process, as users run it) with
//! simulated time frozen, holding 10 ended batches, and measures call rates over loopback
//! HTTP (4 concurrent clients): retrieve, list (a first page and an `after_id` page, 5 per
//! page so both sizes fill them), a results download, then create (starting from the
//! number held). Then the same on a fresh simulator holding 100,000, twice each,
//! alternating. Prints each rate and the ratio of means; the target is a ratio within
//! 0.8..1.25 for create and retrieve.
//!
//! `BENCH_SIM_IN_PROCESS=1` runs the simulator inside this process instead (as until
//! 2026-12-04): its heap, fragmented by 100,000 batches, is then the clients' heap too,
//! and every allocation of theirs pays for it.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use batchcost::simulator::engine::registry::{Cursor, Lifecycle, Record, Registry};
use batchcost::simulator::engine::usage::Breakpoint;
use batchcost::simulator::{SimConfig, spawn};
use jiff::{SignedDuration, Timestamp};

const KEY: &str = "bench-sim-key";
const WORKERS: usize = 4;
const OPS: u64 = 12_000;
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
        t.ok("/v1/messages/batches?limit=5").await;
    })
    .await;
    let ids = ended.clone();
    // Pages of 5 that are full at both sizes: cursors with at least 5 older batches.
    let deep = rate(t, move |t, i| {
        let id = ids[5 + (i as usize * 104_729) % (ids.len() - 5)].clone();
        async move {
            t.ok(&format!("/v1/messages/batches?limit=5&after_id={id}")).await;
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

/// A simulator with its clock stopped: its own process, or one in this process.
enum Sim {
    Process(support::Proc),
    InProcess(batchcost::simulator::SimHandle),
}

impl Sim {
    async fn start() -> Sim {
        if std::env::var_os("BENCH_SIM_IN_PROCESS").is_some() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let config = SimConfig { api_key: KEY.into(), time_scale: 0.0, ..SimConfig::default() };
            return Sim::InProcess(spawn(config, listener).await.expect("spawn"));
        }
        let args = ["simulate", "--listen", "127.0.0.1:0", "--api-key", KEY, "--time-scale", "0"];
        Sim::Process(support::Proc::start(&args, &[]))
    }

    fn base_url(&self) -> String {
        match self {
            Sim::Process(p) => p.url.clone(),
            Sim::InProcess(h) => h.base_url(),
        }
    }

    /// Moves simulated time on an hour (the control API for a process of its own).
    async fn advance_an_hour(&self, t: &Target) {
        match self {
            Sim::InProcess(h) => h.advance(SignedDuration::from_hours(1)),
            Sim::Process(_) => {
                let r = t
                    .req(reqwest::Method::POST, "/_sim/advance")
                    .body(r#"{"seconds": 3600}"#)
                    .send()
                    .await
                    .expect("advance");
                assert!(r.status().is_success(), "advance: {}", r.status());
            }
        }
    }

    async fn live_batches(&self, t: &Target) -> u64 {
        match self {
            Sim::InProcess(h) => h.stats().live_batches,
            Sim::Process(_) => {
                let r = t.req(reqwest::Method::GET, "/_sim/stats").send().await.expect("stats");
                let v: serde_json::Value = r.json().await.expect("stats body");
                v["live_batches"].as_u64().expect("live_batches")
            }
        }
    }

    async fn stop(self) {
        match self {
            Sim::InProcess(h) => h.shutdown().await,
            Sim::Process(p) => drop(p),
        }
    }
}

/// A fresh simulator holding `held` ended batches, measured.
async fn phase(held: usize) -> [f64; 5] {
    let sim = Sim::start().await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(WORKERS * 2)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let t = Arc::new(Target { http, base: sim.base_url() });
    let mut ids = Vec::new();
    fill(&t, &mut ids, held).await;
    sim.advance_an_hour(&t).await;
    assert_eq!(sim.live_batches(&t).await as usize, held);
    // The first call after the jump ends every batch (once); keep that out of the rates.
    t.ok(&format!("/v1/messages/batches/{}", ids[0])).await;
    let rates = measure(&t, &Arc::new(ids)).await;
    sim.stop().await;
    rates
}

/// A one-request record for the in-process registry measure.
struct Rec;

impl Record for Rec {
    fn breakpoints(&self) -> &[Breakpoint] {
        &[]
    }
    fn rejected(&self) -> bool {
        false
    }
}

/// Nanoseconds per call of the registry itself (no HTTP), the best of 5 rounds of
/// 50,000 calls, so the machine's load matters less: create, get, list, results.
fn registry_ns(held: usize) -> [f64; 4] {
    let t0: Timestamp = "2026-01-10T08:00:00Z".parse().expect("time");
    let mut r: Registry<Rec, ()> =
        Registry::new(Lifecycle::DEFAULT, |_, seq| format!("batch_{seq:012}"));
    let ids: Vec<String> = (0..held).map(|_| r.create(vec![Rec], (), t0).id.clone()).collect();
    let later = t0.saturating_add(SignedDuration::from_hours(1)).expect("time");
    r.advance(later);
    let n = 50_000usize;
    let best = |f: &mut dyn FnMut(usize)| {
        (0..5)
            .map(|_| {
                let start = Instant::now();
                for i in 0..n {
                    f(i);
                }
                start.elapsed().as_nanos() as f64 / n as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    let get = best(&mut |i| {
        std::hint::black_box(r.get(&ids[(i * 7919) % ids.len()]).is_ok());
    });
    let list = best(&mut |i| {
        let c = Cursor::OlderThan(ids[5 + (i * 104_729) % (ids.len() - 5)].clone());
        std::hint::black_box(r.list(&c, 5).map(|p| p.0.len()).unwrap_or(0));
    });
    let results = best(&mut |i| {
        std::hint::black_box(r.results(&ids[(i * 31) % ids.len()], later).is_ok());
    });
    let create = best(&mut |_| {
        std::hint::black_box(r.create(vec![Rec], (), later).seq);
    });
    [create, get, list, results]
}

/// One phase in a fresh process of this bench (`--phase N`): its rates, as a line.
fn phase_in_child(held: usize) -> [f64; 5] {
    let exe = std::env::current_exe().expect("bench binary");
    let out = std::process::Command::new(exe)
        .args(["--phase", &held.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("phase process");
    assert!(out.status.success(), "phase {held} failed");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = line.split_whitespace().map(|x| x.parse().expect("rate")).collect();
    v.try_into().expect("five rates")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    };
    if let Some(i) = args.iter().position(|a| a == "--phase") {
        let held: usize = args[i + 1].parse().expect("--phase N");
        let rates = runtime().block_on(phase(held));
        println!("{}", rates.map(|r| r.to_string()).join(" "));
        return;
    }
    // Alternate sizes on fresh simulators so drift in the machine's load hits both. Each
    // phase's clients run in a fresh process too: after 100,000 creates and their ids the
    // clients' own heap slowed the next phase's calls by a quarter.
    let mut small = Vec::new();
    let mut large = Vec::new();
    for _ in 0..2 {
        small.push(phase_in_child(10));
        large.push(phase_in_child(100_000));
    }
    let place = if std::env::var_os("BENCH_SIM_IN_PROCESS").is_some() {
        "in this process"
    } else {
        "its own process"
    };
    println!(
        "simulator scaling ({place}), {WORKERS} clients, {OPS} calls per measure, calls/s (two runs each)"
    );
    println!("{:<22} {:>16} {:>18} {:>8}", "measure", "10 held", "100,000 held", "ratio");
    let names = ["create", "retrieve", "list (first page)", "list (after_id)", "results"];
    for (i, name) in names.iter().enumerate() {
        let s: Vec<f64> = small.iter().map(|r| r[i]).collect();
        let l: Vec<f64> = large.iter().map(|r| r[i]).collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "{:<22} {:>7.0} {:>7.0}  {:>8.0} {:>8.0}  {:>8.2}",
            name,
            s[0],
            s[1],
            l[0],
            l[1],
            mean(&l) / mean(&s)
        );
    }
    let (small, large) = (registry_ns(10), registry_ns(100_000));
    println!("registry alone, ns per call (best of 5 x 50,000)");
    println!("{:<22} {:>10} {:>14} {:>8}", "measure", "10 held", "100,000 held", "ratio");
    for (i, name) in ["create", "get", "list (after_id)", "results"].iter().enumerate() {
        println!("{:<22} {:>10.0} {:>14.0} {:>8.2}", name, small[i], large[i], large[i] / small[i]);
    }
}
