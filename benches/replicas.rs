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

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "bench-provider-key";
const CLIENT: &str = "bench-client-key";
const ADMIN: &str = "bench-admin-token";

struct Proc {
    child: Child,
    url: String,
}

impl Proc {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_batchcost"));
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null()).env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn batchcost");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
        Proc { child, url }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

fn config(dir: &std::path::Path, upstream: &str, url: &str) -> std::path::PathBuf {
    let path = dir.join("batchcost.toml");
    let pricing = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:0"
pricing = "{}"
timezone = "UTC"
[storage]
url = "{url}"
[upstream.anthropic]
base_url = "{upstream}"
api_key_env = "BENCH_PROVIDER_KEY"
[admin]
token_env = "BENCH_ADMIN"
[tracker]
poll_min_ms = 100
poll_max_ms = 500
[[projects]]
name = "bench"
api_key_envs = ["BENCH_CLIENT_KEY"]
[[budgets]]
name = "bench-daily"
project = "bench"
period = "day"
limit_usd = 9000000.0
"#,
            pricing.display(),
        ),
    )
    .unwrap();
    path
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

fn post(http: &reqwest::blocking::Client, url: &str, body: Vec<u8>) -> u16 {
    http.post(format!("{url}/v1/messages/batches"))
        .header("x-api-key", CLIENT)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn run(kind: &str, replicas: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (url, drop_db) = ledger(kind, dir.path());
    let env = [("BENCH_PROVIDER_KEY", KEY), ("BENCH_ADMIN", ADMIN), ("BENCH_CLIENT_KEY", CLIENT)];
    let sim_args = ["simulate", "--listen", "127.0.0.1:0", "--api-key", KEY, "--time-scale", "0"];
    let sim = Proc::start(&sim_args, &[]);
    let cfg = config(dir.path(), &sim.url, &url);
    let gws: Vec<Proc> = (0..replicas)
        .map(|_| Proc::start(&["serve", "--config", cfg.to_str().unwrap()], &env))
        .collect();
    let http =
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().unwrap();

    // Settlement first: 20 x 5,000 requests created while upstream time stands still,
    // then all ending at once.
    let big: Vec<Vec<u8>> = (0..20).map(|i| body(&format!("big{i}"), 5_000)).collect();
    for (i, b) in big.into_iter().enumerate() {
        assert_eq!(post(&http, &gws[i % gws.len()].url, b), 200);
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
    // Admission (these batches start after the advance and stay in flight).
    let (n, clients) = (4_000, 32);
    let bodies: Vec<Vec<Vec<u8>>> = (0..clients)
        .map(|c| (0..n / clients).map(|i| body(&format!("t{c}-{i}"), 2)).collect())
        .collect();
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
                            post(http, &gws[(c + i) % gws.len()].url, b.clone()) == 200
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
        "{kind}, {replicas} replica(s): admission {n} small submissions in {secs:.2} s = {:.0}/s ({clients} clients)",
        n as f64 / secs
    );

    drop(gws);
    drop(sim);
    if let Some(name) = drop_db {
        let admin = std::env::var("BATCHCOST_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        psql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
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
