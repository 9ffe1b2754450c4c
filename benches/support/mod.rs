//! Shared by the gateway benchmarks: the release binary started as `simulate` or `serve`,
//! create bodies, posting, and the gateway's config.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KEY: &str = "bench-provider-key";
pub const CLIENT: &str = "bench-client-key";
pub const EXACT_CLIENT: &str = "bench-exact-client-key";
pub const ADMIN: &str = "bench-admin-token";

/// Environment of the gateway the config below describes.
pub const GATEWAY_ENV: [(&str, &str); 4] = [
    ("BENCH_PROVIDER_KEY", KEY),
    ("BENCH_ADMIN", ADMIN),
    ("BENCH_CLIENT_KEY", CLIENT),
    ("BENCH_EXACT_CLIENT_KEY", EXACT_CLIENT),
];

pub struct Proc {
    pub child: Child,
    pub url: String,
}

impl Proc {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_batchcost"));
        // Its stderr is the bench's: a process that cannot start says why.
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn batchcost");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
        Proc { child, url }
    }

    /// The simulator, fast enough never to be the bottleneck.
    pub fn simulator() -> Proc {
        Proc::start(
            &[
                "simulate",
                "--listen",
                "127.0.0.1:0",
                "--api-key",
                KEY,
                "--time-scale",
                "100000",
                "--rate",
                "100000",
            ],
            &[],
        )
    }

    /// The simulator with upstream time standing still (batches end only when told to
    /// advance), at its default request rate.
    pub fn frozen_simulator() -> Proc {
        Proc::start(
            &["simulate", "--listen", "127.0.0.1:0", "--api-key", KEY, "--time-scale", "0"],
            &[],
        )
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu(&self) -> Duration {
        cpu_of(&format!("/proc/{}/stat", self.child.id()))
    }

    /// A `/proc/PID/status` field in kB.
    pub fn kb(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A create body of `n` requests of about `bytes_each` bytes.
pub fn body(tag: &str, n: usize, bytes_each: usize) -> Vec<u8> {
    let filler: String =
        "The quarterly report shows steady growth in every region. ".repeat(bytes_each / 58 + 1);
    let text = &filler[..bytes_each.min(filler.len())];
    let mut out = Vec::with_capacity(n * (bytes_each + 200));
    out.extend_from_slice(b"{\"requests\":[");
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        write!(
            out,
            r#"{{"custom_id":"{tag}-{i:06}","params":{{"model":"claude-haiku-4-5","max_tokens":256,"messages":[{{"role":"user","content":"{text}"}}]}}}}"#
        )
        .unwrap();
    }
    out.extend_from_slice(b"]}");
    out
}

/// Posts a create; the status and the answer.
pub fn try_post(
    http: &reqwest::blocking::Client,
    url: &str,
    key: &str,
    body: Vec<u8>,
) -> (Duration, reqwest::StatusCode, serde_json::Value) {
    let t = Instant::now();
    let r = http
        .post(format!("{url}/v1/messages/batches"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("post");
    let status = r.status();
    let v: serde_json::Value = r.json().unwrap_or_default();
    (t.elapsed(), status, v)
}

/// Posts a create as `CLIENT`; only the status (0 when no answer came), the body unread.
pub fn post_status(http: &reqwest::blocking::Client, url: &str, body: Vec<u8>) -> u16 {
    http.post(format!("{url}/v1/messages/batches"))
        .header("x-api-key", CLIENT)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Posts a create that must succeed.
pub fn post(
    http: &reqwest::blocking::Client,
    url: &str,
    key: &str,
    body: Vec<u8>,
) -> (Duration, serde_json::Value) {
    let (t, status, v) = try_post(http, url, key, body);
    assert!(status.is_success(), "create failed: {status} {v}");
    (t, v)
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What a benchmark's gateway config varies.
pub struct Setup<'a> {
    /// The one upstream, `[upstream.NAME]`: `anthropic` or `openai`.
    pub upstream: &'a str,
    pub upstream_url: &'a str,
    /// The ledger's URL; `None`: a SQLite file in the config's directory.
    pub storage: Option<&'a str>,
    /// The tracker's `poll_min_ms` and `poll_max_ms`.
    pub poll_ms: (u64, u64),
    /// The budget of project `exact`, if any.
    pub exact_limit_usd: Option<&'a str>,
    /// `[tracker] lease_secs`: how long a killed gateway's batches wait for another.
    pub lease_secs: u64,
}

impl<'a> Setup<'a> {
    /// Upstream `upstream` at `upstream_url`, a SQLite ledger, polls every 100 to 500 ms,
    /// 30 s leases.
    pub fn new(upstream: &'a str, upstream_url: &'a str) -> Self {
        Setup {
            upstream,
            upstream_url,
            storage: None,
            poll_ms: (100, 500),
            exact_limit_usd: None,
            lease_secs: 30,
        }
    }
}

/// The gateway's config: project `bench` with a budget it never reaches, and project
/// `exact` whose budget (`exact_limit_usd`, if any) fits a known number of submissions.
pub fn config(
    dir: &std::path::Path,
    upstream: &str,
    exact_limit_usd: Option<&str>,
) -> std::path::PathBuf {
    config_for(dir, &Setup { exact_limit_usd, ..Setup::new("anthropic", upstream) })
}

/// [`config`] as `setup` says.
pub fn config_for(dir: &std::path::Path, setup: &Setup) -> std::path::PathBuf {
    let path = dir.join("batchcost.toml");
    let pricing = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
    let exact = setup.exact_limit_usd.map_or(String::new(), |limit| {
        format!(
            r#"[[projects]]
name = "exact"
api_key_envs = ["BENCH_EXACT_CLIENT_KEY"]
[[budgets]]
name = "exact-monthly"
project = "exact"
period = "month"
limit_usd = {limit}
"#
        )
    });
    let storage = match setup.storage {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", dir.join("ledger.db").display()),
    };
    let (name, upstream, (poll_min, poll_max), lease) =
        (setup.upstream, setup.upstream_url, setup.poll_ms, setup.lease_secs);
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:0"
pricing = "{}"
timezone = "UTC"
[storage]
url = "{storage}"
[upstream.{name}]
base_url = "{upstream}"
api_key_env = "BENCH_PROVIDER_KEY"
[admin]
token_env = "BENCH_ADMIN"
[tracker]
poll_min_ms = {poll_min}
poll_max_ms = {poll_max}
lease_secs = {lease}
[[projects]]
name = "bench"
api_key_envs = ["BENCH_CLIENT_KEY"]
[[budgets]]
name = "bench-daily"
project = "bench"
period = "day"
limit_usd = 9000000.0
{exact}"#,
            pricing.display(),
        ),
    )
    .unwrap();
    path
}

/// User + system CPU time from a `/proc/.../stat` file. On a shared machine a process's
/// wall time depends on everyone else's load; its CPU time much less.
pub fn cpu_of(stat_path: &str) -> Duration {
    let s = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// This process's CPU time so far.
pub fn self_cpu() -> Duration {
    cpu_of("/proc/self/stat")
}

/// CPU time so far of every process named `comm` (all of a PostgreSQL server's: the
/// backends serving the gateways' pooled connections and its writers). A process that
/// exits between two readings takes its time with it, so read around a phase in which
/// the processes that matter stay up.
pub fn cpu_of_all(comm: &str) -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .map(|e| cpu_of(&e.path().join("stat").to_string_lossy()))
        .sum()
}
