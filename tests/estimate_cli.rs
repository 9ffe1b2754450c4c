//! `batchcost estimate` end to end: the real binary on the shipped sample batches.

use std::path::PathBuf;
use std::process::{Command, Output};

use batchcost::money::Money;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn estimate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_batchcost"))
        .arg("estimate")
        .args(args)
        .args(["--pricing", repo("pricing.toml").to_str().expect("utf-8 path")])
        .args(["--at", "2026-11-24T00:00:00Z"])
        .output()
        .expect("runs batchcost")
}

fn usd(v: &serde_json::Value) -> Money {
    Money::parse_usd(v.as_str().expect("a decimal string")).expect("exact decimal")
}

#[test]
fn the_table_lists_each_model_and_a_total() {
    let sample = repo("examples/sample-batch.json");
    let out = estimate(&[sample.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("model") && lines[0].contains("worst batch"), "{text}");
    for model in ["claude-haiku-4-5", "claude-opus-4-7", "claude-sonnet-4-6"] {
        assert!(lines.iter().any(|l| l.starts_with(model)), "{model} missing:\n{text}");
    }
    let total = lines.iter().find(|l| l.starts_with("total")).expect("a total row");
    let cells: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(cells[1], "20", "{total}");
    // Money is rounded to cents in the table: $d.dd in the last four columns.
    for cell in &cells[cells.len() - 4..] {
        let (_, cents) =
            cell.strip_prefix('$').expect("dollar sign").split_once('.').expect("cents");
        assert_eq!(cents.len(), 2, "{cell}");
    }
}

#[test]
fn json_output_is_exact_and_adds_up() {
    let sample = repo("examples/sample-batch.json");
    let out = estimate(&[sample.to_str().expect("utf-8 path"), "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["requests"], 20);
    assert_eq!(v["format"], "json");
    let models = v["models"].as_array().expect("models");
    assert_eq!(models.len(), 3);
    let requests: u64 = models.iter().map(|m| m["requests"].as_u64().expect("count")).sum();
    assert_eq!(requests, 20);
    for kind in ["worst", "expected"] {
        for field in ["cost_usd", "list_cost_usd"] {
            let sum: Money = models.iter().map(|m| usd(&m[kind][field])).sum();
            assert_eq!(sum, usd(&v[kind][field]), "{kind}.{field}");
        }
    }
    assert!(usd(&v["worst"]["cost_usd"]) > usd(&v["expected"]["cost_usd"]));
    // The shared 1-hour system prompt: written once, read by the other seven tickets.
    let sonnet = models.iter().find(|m| m["model"] == "claude-sonnet-4-6").expect("sonnet");
    let write = sonnet["cache_write_tokens_expected"].as_u64().expect("tokens");
    assert!(write > 0);
    assert_eq!(sonnet["cache_read_tokens_expected"].as_u64(), Some(7 * write));
}

#[test]
fn jsonl_gives_the_same_models_as_json() {
    let json =
        estimate(&[repo("examples/sample-batch.json").to_str().expect("path"), "--format", "json"]);
    let jsonl = estimate(&[
        repo("examples/sample-batch.jsonl").to_str().expect("path"),
        "--format",
        "json",
    ]);
    let a: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let b: serde_json::Value = serde_json::from_slice(&jsonl.stdout).expect("JSON");
    assert_eq!(b["format"], "jsonl");
    assert_eq!(a["models"], b["models"]);
    assert_eq!(a["custom_id_fingerprint"], b["custom_id_fingerprint"]);
}

#[test]
fn a_bad_body_exits_2_naming_request_and_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.json");
    let body = r#"{"requests": [
        {"custom_id": "a", "params": {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": []}},
        {"custom_id": "b", "params": {"model": "claude-haiku-4-5", "max_tokens": 0, "messages": []}}
    ]}"#;
    std::fs::write(&bad, body).expect("write");
    let out = estimate(&[bad.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json: requests[1].params.max_tokens: must be an integer >= 1"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let missing = estimate(&[dir.path().join("nope.json").to_str().expect("path")]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}
