//! Ledger backends and replicas (issue 13). Run:
//! `cargo bench --bench replicas [-- sqlite|postgres REPLICAS]` (default: every case).
//!
//! Starts the release binary (`simulate`, then `serve` once per replica) on loopback, on a
//! temporary SQLite ledger or a fresh PostgreSQL database (`$BATCHCOST_TEST_PG`, default
//! the local server), and measures:
//! - settlement: 20 batches of 5,000 requests created while upstream time stands still,
//!   then released at once; result lines settled per second, by all replicas together;
//! - admission throughput: 4,000 small (2-request) submissions from 32 clients spread
//!   round-robin over the replicas, all against one budget window.
//!
//! With each rate it prints the CPU time per admission of the gateways, the PostgreSQL
//! server, the simulator and its own clients (`/proc`, 10 ms ticks).
//!
//! `BENCH_POLL_MS=MIN,MAX` sets the tracker's polls during the admission run (default: the
//! shipped `[tracker]` schedule). `BENCH_LINGER=1` keeps every process 3 s after the last
//! figure, so that what each used (`/proc/PID/stat`) can be read after the run.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{ADMIN, GATEWAY_ENV, KEY, Proc, Setup, cpu_of_all, post_status, self_cpu};

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh ledger: (storage url, what to drop afterwards).
fn ledger(kind: &str, dir: &std::path::Path) -> (String, Option<String>) {
    if kind == "sqlite" {
        return (format!("sqlite://{}", dir.join("ledger.db").display()), None);
    }
    let admin = std::env::var("BATCHCOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("batchcost_bench_{}", std::process::id());
    psql(&admin, &format!("DROP DATABASE IF EXISTS {name}"));
    psql(&admin, &format!("CREATE DATABASE {name}"));
    let server = admin.rsplit_once('/').map_or(admin.as_str(), |(s, _)| s).to_string();
    (format!("{server}/{name}"), Some(name))
}

fn body(tag: &str, n: usize) -> Vec<u8> {
    let requests: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"custom_id": format!("{tag}-{i}"), "params": {
                "model": "claude-haiku-4-5", "max_tokens": 100,
                "messages": [{"role": "user", "content": format!("Summarise item {i} of {tag}.")}]}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "requests": requests })).unwrap()
}

fn run(kind: &str, replicas: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (url, drop_db) = ledger(kind, dir.path());
    let sim = Proc::frozen_simulator();
    // The replicas, their tracker polling every `poll_ms` (min, max).
    let gateways = |poll_ms| -> Vec<Proc> {
        let setup = Setup { storage: Some(&url), poll_ms, ..Setup::new("anthropic", &sim.url) };
        let cfg = support::config_for(dir.path(), &setup);
        (0..replicas)
            .map(|_| Proc::start(&["serve", "--config", cfg.to_str().unwrap()], &GATEWAY_ENV))
            .collect()
    };
    let gws = gateways(Setup::new("anthropic", &sim.url).poll_ms);
    let http =
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().unwrap();

    // Settlement first: 20 x 5,000 requests created while upstream time stands still,
    // then all ending at once.
    let big: Vec<Vec<u8>> = (0..20).map(|i| body(&format!("big{i}"), 5_000)).collect();
    for (i, b) in big.into_iter().enumerate() {
        assert_eq!(post_status(&http, &gws[i % gws.len()].url, b), 200);
    }
    let lines = 20 * 5_000;
    let t = Instant::now();
    http.post(format!("{}/_sim/advance", sim.url))
        .header("x-api-key", KEY)
        .json(&serde_json::json!({"seconds": 86_000}))
        .send()
        .unwrap();
    loop {
        let b: serde_json::Value = http
            .get(format!("{}/api/budgets", gws[0].url))
            .bearer_auth(ADMIN)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let reserved = b["budgets"][0]["reserved_usd"].as_str().unwrap_or("x");
        if reserved.chars().all(|c| c == '0' || c == '.') {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(900), "not settled: {b}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{kind}, {replicas} replica(s): settlement of {} batches / {lines} result lines in {secs:.2} s = {:.0} lines/s",
        20,
        lines as f64 / secs
    );
    // Admission (these batches start after the advance and stay in flight), by gateways
    // restarted with the tracker's shipped poll schedule (first poll 5-8 s after a create)
    // unless `BENCH_POLL_MS=MIN,MAX` says otherwise: the 100-500 ms polls above, which the
    // settlement figure needs, would have every batch claimed, polled and rescheduled
    // within the run, a tracker load no deployment runs at.
    let poll_ms = poll_ms_for_admission();
    drop(gws);
    let gws = gateways(poll_ms);
    let (n, clients) = (4_000, 32);
    let bodies: Vec<Vec<Vec<u8>>> = (0..clients)
        .map(|c| (0..n / clients).map(|i| body(&format!("t{c}-{i}"), 2)).collect())
        .collect();
    let cpu = |gws: &[Proc]| {
        let gateways: Duration = gws.iter().map(Proc::cpu).sum();
        [gateways, cpu_of_all("postgres"), sim.cpu(), self_cpu()]
    };
    let before = cpu(&gws);
    let t = Instant::now();
    let ok: usize = std::thread::scope(|s| {
        let hs: Vec<_> = bodies
            .into_iter()
            .enumerate()
            .map(|(c, mine)| {
                let (http, gws) = (&http, &gws);
                s.spawn(move || {
                    mine.into_iter()
                        .enumerate()
                        .filter(|(i, b)| {
                            post_status(http, &gws[(c + i) % gws.len()].url, b.clone()) == 200
                        })
                        .count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(ok, n, "every submission admitted");
    println!(
        "{kind}, {replicas} replica(s): admission {n} small submissions in {secs:.2} s = {:.0}/s ({clients} clients, polls every {}-{} ms)",
        n as f64 / secs,
        poll_ms.0,
        poll_ms.1
    );
    // CPU per admission by who used it: on a shared 2-core machine the rate above moves
    // with everyone else's load and the machine's speed of the day, this much less.
    let after = cpu(&gws);
    let per = |i: usize| (after[i] - before[i]).as_secs_f64() * 1e6 / n as f64;
    let server = if kind == "postgres" { per(1) } else { 0.0 };
    println!(
        "{kind}, {replicas} replica(s): CPU per admission {:.0} us = gateways {:.0} + PostgreSQL {server:.0} + simulator {:.0} + bench clients {:.0}",
        per(0) + server + per(2) + per(3),
        per(0),
        per(2),
        per(3)
    );

    if std::env::var_os("BENCH_LINGER").is_some() {
        std::thread::sleep(Duration::from_secs(3));
    }
    drop(gws);
    drop(sim);
    if let Some(name) = drop_db {
        let admin = std::env::var("BATCHCOST_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        psql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// The tracker's poll schedule during the admission run: `BENCH_POLL_MS=MIN,MAX`, else
/// the shipped defaults.
fn poll_ms_for_admission() -> (u64, u64) {
    let Ok(v) = std::env::var("BENCH_POLL_MS") else {
        let shipped = batchcost::config::Tracker::default();
        return (shipped.poll_min_ms, shipped.poll_max_ms);
    };
    let parsed = v.split_once(',').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    parsed.unwrap_or_else(|| panic!("BENCH_POLL_MS: expected MIN,MAX in ms, got {v:?}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    match args.as_slice() {
        [kind, n] => run(kind, n.parse().expect("replicas")),
        _ => {
            run("sqlite", 1);
            run("postgres", 1);
            run("postgres", 3);
        }
    }
}
