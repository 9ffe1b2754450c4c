//! Shared by the runner tests: input files, the `batchcost run` command line against an
//! in-process gateway and simulator, and what the simulator really received.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use batchcost::config::Settings;
use batchcost::simulator::SimConfig;
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
        // Anthropic and OpenAI lines name the request `custom_id`, Gemini lines `key`.
        let id = v["custom_id"].as_str().or(v["key"].as_str()).unwrap().to_string();
        assert!(by.insert(id.clone(), v).is_none(), "custom_id {id} appears twice in --out");
        order.push(id);
    }
    (order, by)
}

/// Every batch the simulator holds, each with the custom_ids its results list.
pub async fn upstream_batches(h: &Harness) -> Vec<(Value, Vec<String>)> {
    upstream_anthropic(h)
        .await
        .into_iter()
        .map(|b| (b.raw, b.lines.into_iter().map(|(id, _)| id).collect()))
        .collect()
}

/// Every Anthropic batch the simulator holds, with its result lines once ended.
pub async fn upstream_anthropic(h: &Harness) -> Vec<UpBatch> {
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
            let mut lines = Vec::new();
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
                    lines.push((v["custom_id"].as_str().unwrap().to_string(), v));
                }
            }
            out.push(UpBatch {
                id: id.to_string(),
                created: b["created_at"].as_str().unwrap_or("").to_string(),
                raw: b.clone(),
                lines,
            });
        }
        if page["has_more"] != true {
            break;
        }
        after = page["last_id"].as_str().map(str::to_string);
    }
    out
}

/// Each id's upstream answers (starting with `prefix`), oldest batch first.
pub fn answers_in_order(mut batches: Vec<UpBatch>, prefix: &str) -> HashMap<String, Vec<Value>> {
    batches.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    let mut by: HashMap<String, Vec<Value>> = HashMap::new();
    for b in batches {
        for (id, v) in b.lines.into_iter().filter(|(i, _)| i.starts_with(prefix)) {
            by.entry(id).or_default().push(v);
        }
    }
    by
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

/// [`harness_with`] whose gateway also has an `openai` and a `gemini` upstream, both the
/// same simulator (which serves all three APIs).
pub async fn harness_all(sim: SimConfig, tweak: impl FnOnce(&mut Settings)) -> Harness {
    harness_with(vec![], std::sync::Arc::new(batchcost::clock::SystemClock), sim, |s| {
        let up = s.upstreams[0].clone();
        for kind in ["openai", "gemini"] {
            let mut u = up.clone();
            u.name = kind.into();
            u.kind = kind.into();
            if kind == "gemini" {
                // The simulator serves Gemini under `/gemini` (google-genai calls `/v1/...`).
                u.base_url = format!("{}/gemini", up.base_url);
            }
            s.upstreams.push(u);
        }
        tweak(s);
    })
    .await
}

/// Writes `n` OpenAI batch lines `{tag}-{i}` (chat completions on gpt-5-mini).
pub fn write_openai_input(dir: &Path, tag: &str, n: usize) -> PathBuf {
    let path = dir.join(format!("{tag}.jsonl"));
    let mut text = String::with_capacity(n * 200);
    for i in 0..n {
        let line = json!({"custom_id": format!("{tag}-{i}"), "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-5-mini", "max_completion_tokens": 16,
                     "messages": [{"role": "user", "content": format!("Classify item {i} of {tag}.")}]}});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes `n` Gemini lines `{tag}-{i}` (gemini-2.5-flash named in each request).
pub fn write_gemini_input(dir: &Path, tag: &str, n: usize) -> PathBuf {
    let path = dir.join(format!("{tag}.jsonl"));
    let mut text = String::with_capacity(n * 200);
    for i in 0..n {
        let line = json!({"key": format!("{tag}-{i}"), "request": {"model": "models/gemini-2.5-flash",
            "contents": [{"role": "user", "parts": [{"text": format!("Classify item {i} of {tag}.")}]}],
            "generationConfig": {"maxOutputTokens": 16, "thinkingConfig": {"thinkingBudget": 0}}}});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// One upstream batch as the simulator holds it: its id, creation order key, and each
/// result line (custom_id or key, and the line) once it has ended.
pub struct UpBatch {
    pub id: String,
    pub created: String,
    /// The batch object (Gemini: the operation).
    pub raw: Value,
    pub lines: Vec<(String, Value)>,
}

/// Every OpenAI batch the simulator holds, with its output and error files' lines.
pub async fn upstream_openai(h: &Harness) -> Vec<UpBatch> {
    let base = h.sim.base_url();
    let get = |path: String| h.http.get(format!("{base}{path}")).bearer_auth(PROVIDER);
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut rb = get("/v1/batches".into()).query(&[("limit", "100")]);
        if let Some(a) = &after {
            rb = rb.query(&[("after", a)]);
        }
        let page: Value = rb.send().await.unwrap().json().await.unwrap();
        let Some(data) = page["data"].as_array() else { panic!("simulator list: {page}") };
        for b in data {
            let mut lines = Vec::new();
            for f in [&b["output_file_id"], &b["error_file_id"]] {
                let Some(f) = f.as_str() else { continue };
                let body = get(format!("/v1/files/{f}/content")).send().await.unwrap();
                for l in body.text().await.unwrap().lines().filter(|l| !l.trim().is_empty()) {
                    let v: Value = serde_json::from_str(l).unwrap();
                    lines.push((v["custom_id"].as_str().unwrap().to_string(), v));
                }
            }
            out.push(UpBatch {
                raw: b.clone(),
                id: b["id"].as_str().unwrap().to_string(),
                created: format!("{:020}", b["created_at"].as_i64().unwrap_or(0)),
                lines,
            });
        }
        if page["has_more"] != true {
            break;
        }
        after = page["last_id"].as_str().map(str::to_string);
    }
    out
}

/// Every Gemini batch the simulator holds, with its inline or file results' lines.
pub async fn upstream_gemini(h: &Harness) -> Vec<UpBatch> {
    let base = format!("{}/gemini", h.sim.base_url());
    let get = |path: String| h.http.get(format!("{base}{path}")).header("x-goog-api-key", PROVIDER);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut rb = get("/v1beta/batches".into()).query(&[("pageSize", "100")]);
        if let Some(t) = &token {
            rb = rb.query(&[("pageToken", t)]);
        }
        let page: Value = rb.send().await.unwrap().json().await.unwrap();
        for listed in page["operations"].as_array().into_iter().flatten() {
            // The list leaves inline answers out; the batch itself has them.
            let name = listed["name"].as_str().unwrap();
            let op: Value =
                get(format!("/v1beta/{name}")).send().await.unwrap().json().await.unwrap();
            let meta = &op["metadata"];
            let mut lines = Vec::new();
            if let Some(items) = meta.pointer("/output/inlinedResponses/inlinedResponses") {
                for r in items.as_array().unwrap() {
                    lines.push((r["metadata"]["key"].as_str().unwrap().to_string(), r.clone()));
                }
            } else if let Some(f) = meta.pointer("/output/responsesFile").and_then(Value::as_str) {
                let f = f.strip_prefix("files/").unwrap_or(f);
                let body = get(format!("/download/v1beta/files/{f}:download?alt=media"))
                    .send()
                    .await
                    .unwrap();
                for l in body.text().await.unwrap().lines().filter(|l| !l.trim().is_empty()) {
                    let v: Value = serde_json::from_str(l).unwrap();
                    lines.push((v["key"].as_str().unwrap().to_string(), v));
                }
            }
            out.push(UpBatch {
                raw: op.clone(),
                id: name.strip_prefix("batches/").unwrap_or(name).to_string(),
                created: meta["createTime"].as_str().unwrap_or("").to_string(),
                lines,
            });
        }
        match page["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    out
}

/// How many times the upstream answered each id starting with `prefix`.
pub fn answered(batches: &[UpBatch], prefix: &str) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for b in batches {
        for (id, _) in b.lines.iter().filter(|(i, _)| i.starts_with(prefix)) {
            *n.entry(id.clone()).or_default() += 1;
        }
    }
    n
}

/// The sum of the ledger's settled costs (cost, list cost) of these batches.
pub async fn ledger_costs(
    h: &Harness,
    ids: &[String],
) -> (batchcost::money::Money, batchcost::money::Money) {
    use batchcost::money::Money;
    let (mut cost, mut list) = (Money::ZERO, Money::ZERO);
    for id in ids {
        let rec = h.wait_settled(id).await;
        cost += Money::parse_usd(rec["cost_usd"].as_str().unwrap()).unwrap();
        list += Money::parse_usd(rec["list_cost_usd"].as_str().unwrap()).unwrap();
    }
    (cost, list)
}
