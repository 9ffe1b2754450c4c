//! Shared by the runner tests: input files, the `batchcost run` command line against an
//! in-process gateway and simulator, and what the simulator really received.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

#[path = "../common/mod.rs"]
pub mod common;

pub use common::*;

/// Writes `n` Anthropic request lines `{tag}-{i}`; `params(i)` may override the params.
pub fn write_input(
    dir: &Path,
    tag: &str,
    n: usize,
    params: impl Fn(usize) -> Option<Value>,
) -> PathBuf {
    let path = dir.join(format!("{tag}.jsonl"));
    let mut text = String::with_capacity(n * 160);
    for i in 0..n {
        let p = params(i).unwrap_or_else(|| {
            json!({"model": "claude-haiku-4-5", "max_tokens": 16,
                   "messages": [{"role": "user", "content": format!("Classify item {i} of {tag}.")}]})
        });
        text.push_str(&json!({"custom_id": format!("{tag}-{i}"), "params": p}).to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// `batchcost run` against the harness's gateway as project `alpha`, admin token given.
pub fn run_cmd(h: &Harness, input: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_batchcost"));
    c.arg("run")
        .arg(input)
        .args([
            "--gateway",
            &h.base,
            "--admin-token-env",
            "RUNNER_TEST_ADMIN",
            "--project",
            "alpha",
        ])
        .args(["--poll-min-ms", "20", "--poll-max-ms", "200", "--settle-timeout-secs", "60"])
        .args(extra)
        .env("BATCHCOST_API_KEY", PROJECTS[0].1)
        .env("RUNNER_TEST_ADMIN", ADMIN)
        .env_remove("RUST_LOG");
    c
}

pub async fn output(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `--out` lines, by custom_id, asserting each appears exactly once.
pub fn results(path: &Path) -> (Vec<String>, HashMap<String, Value>) {
    let mut order = Vec::new();
    let mut by = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let id = v["custom_id"].as_str().unwrap().to_string();
        assert!(by.insert(id.clone(), v).is_none(), "custom_id {id} appears twice in --out");
        order.push(id);
    }
    (order, by)
}

/// Every batch the simulator holds, each with the custom_ids its results list.
pub async fn upstream_batches(h: &Harness) -> Vec<(Value, Vec<String>)> {
    let base = h.sim.base_url();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut rb = h
            .http
            .get(format!("{base}/v1/messages/batches"))
            .header("x-api-key", PROVIDER)
            .header("anthropic-version", "2023-06-01")
            .query(&[("limit", "100")]);
        if let Some(a) = &after {
            rb = rb.query(&[("after_id", a)]);
        }
        let page: Value = rb.send().await.unwrap().json().await.unwrap();
        let Some(data) = page["data"].as_array() else { panic!("simulator list: {page}") };
        for b in data {
            let id = b["id"].as_str().unwrap();
            let mut ids = Vec::new();
            if b["processing_status"] == "ended" {
                let body = h
                    .http
                    .get(format!("{base}/v1/messages/batches/{id}/results"))
                    .header("x-api-key", PROVIDER)
                    .header("anthropic-version", "2023-06-01")
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                for l in body.lines().filter(|l| !l.trim().is_empty()) {
                    let v: Value = serde_json::from_str(l).unwrap();
                    ids.push(v["custom_id"].as_str().unwrap().to_string());
                }
            }
            out.push((b.clone(), ids));
        }
        if page["has_more"] != true {
            break;
        }
        after = page["last_id"].as_str().map(str::to_string);
    }
    out
}

/// How many times the upstream received each custom_id (over all its batches).
pub async fn upstream_counts(h: &Harness, prefix: &str) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for (_, ids) in upstream_batches(h).await {
        for id in ids.into_iter().filter(|i| i.starts_with(prefix)) {
            *n.entry(id).or_default() += 1;
        }
    }
    n
}
