//! Property tests (proptest) on the three parsers that see untrusted bytes, and on the one
//! promise budgets rest on: the estimator's worst-case input tokens are never below what
//! the upstream (here, the simulator's own token model) then reports for the request.
//!
//! Case counts are fixed (no wall-clock budget); seeds are fresh each run, so CI keeps
//! exploring, and a failure prints the shrunk input.

#[path = "../common/mod.rs"]
mod common;
mod strategies;

use std::cell::Cell;
use std::collections::HashSet;
use std::path::Path;

use batchcost::estimate::EstimateOptions;
use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::estimate::{estimate_bytes, request_input_upper_bound};
use batchcost::providers::anthropic::results::Lines;
use batchcost::settle::Tally;
use batchcost::simulator::DEFAULT_MODELS;
use batchcost::simulator::params::{Mode, summarize};
use jiff::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

fn table() -> PriceTable {
    PriceTable::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml")).unwrap()
}

fn opts() -> EstimateOptions {
    EstimateOptions::new("2026-03-01T00:00:00Z".parse().unwrap(), 0.5)
}

fn models() -> HashSet<String> {
    DEFAULT_MODELS.iter().map(|m| m.to_string()).collect()
}

fn cases(n: u32) -> Config {
    Config { cases: n, failure_persistence: None, ..Config::default() }
}

/// A valid two-request body to mutate.
fn seed_body() -> Vec<u8> {
    let p = json!({"model": "claude-haiku-4-5", "max_tokens": 64, "system": [{"type": "text",
        "text": "Be brief.", "cache_control": {"type": "ephemeral"}}], "tools": [{"name": "f",
        "input_schema": {"type": "object"}}], "messages": [{"role": "user", "content": [
        {"type": "text", "text": "안녕 😀 hi"}, {"type": "image", "source": {"type": "url",
        "url": "https://x/y.png"}}]}]});
    serde_json::to_vec(&json!({"requests": [{"custom_id": "a", "params": p},
        {"custom_id": "b", "params": p}]}))
    .unwrap()
}

/// Bytes that are a valid body with a few bytes flipped, inserted or cut.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), any::<u8>(), 0u8..3);
    prop::collection::vec(edit, 1..8).prop_map(|edits| {
        let mut b = seed_body();
        for (at, byte, kind) in edits {
            let i = at.index(b.len().max(1));
            match kind {
                0 if i < b.len() => b[i] = byte,
                1 => b.insert(i.min(b.len()), byte),
                _ if i < b.len() => {
                    b.truncate(i);
                }
                _ => {}
            }
        }
        b
    })
}

/// Estimator errors are typed and short: they never echo a large input back.
fn check_error(body: &[u8], table: &PriceTable) {
    if let Err(e) = estimate_bytes(body, table, &opts()) {
        let m = e.message();
        assert!(!m.is_empty() && m.len() < 1_000, "message of {} bytes: {m:.200}", m.len());
    }
}

proptest! {
    #![proptest_config(cases(3_000))]

    /// (a) Any bytes at all: an estimate or a typed error, never a panic.
    #[test]
    fn the_request_parser_survives_any_bytes(body in prop::collection::vec(any::<u8>(), 0..400)) {
        let t = table();
        check_error(&body, &t);
        let _ = request_input_upper_bound(&body);
    }

    /// (a) A valid body with a few bytes changed: still never a panic.
    #[test]
    fn the_request_parser_survives_corrupted_bodies(body in mutated()) {
        check_error(&body, &table());
    }

    /// (a) Well-formed JSON of the right shape with arbitrary values in every field.
    #[test]
    fn the_request_parser_survives_arbitrary_values(
        v in strategies::json_value(), p in strategies::params(), key in strategies::text(12),
    ) {
        let t = table();
        let mut params = p.clone();
        params[key.clone()] = v.clone();
        let bodies = [
            json!({"requests": [{"custom_id": "a", "params": params}]}),
            json!({"requests": [{"custom_id": "a", "params": {"model": "claude-haiku-4-5",
                "max_tokens": 5, "messages": v.clone()}}]}),
            json!({"requests": [{"custom_id": "a", "params": {"model": "claude-haiku-4-5",
                "max_tokens": 5, "messages": [{"role": "user", "content": v.clone()}]}}]}),
            json!({"requests": [{"custom_id": "a", "params": {"model": "claude-haiku-4-5",
                "max_tokens": 5, "system": v.clone(), "tools": v.clone(),
                "messages": [{"role": "user", "content": "x"}]}}]}),
            json!({"requests": v.clone()}),
        ];
        for b in bodies {
            check_error(&serde_json::to_vec(&b).unwrap(), &t);
        }
    }
}

/// (c) Worst-case input tokens >= the simulator's input + cache writes + cache reads
/// (the simulator reports exactly its prompt count, split three ways), for generated
/// requests with random structure, scripts and cache marks.
#[test]
fn the_worst_case_is_never_below_what_the_simulator_counts() {
    const CASES: u32 = 3_000;
    let (t, known) = (table(), models());
    let mut runner = proptest::test_runner::TestRunner::new(cases(CASES));
    let (compared, refused, worst_ratio) = (Cell::new(0u32), Cell::new(0u32), Cell::new(f64::MAX));
    let result = runner.run(&strategies::params(), |p| {
        let s = summarize(p.as_object().unwrap(), &known, Mode::Batch);
        if s.invalid.is_some() {
            // The simulator answers such a request `errored`, which costs nothing.
            refused.set(refused.get() + 1);
            return Ok(());
        }
        let bytes = serde_json::to_vec(&p).unwrap();
        let upper = request_input_upper_bound(&bytes).expect("the estimator accepts it too");
        prop_assert!(upper >= s.input_tokens, "bound {} < simulator {}", upper, s.input_tokens);
        // And through the whole-batch path, which also folds cache writes and reads.
        let body = json!({"requests": [{"custom_id": "r", "params": p}]});
        let est = estimate_bytes(&serde_json::to_vec(&body).unwrap(), &t, &opts()).unwrap();
        prop_assert!(est.models[0].input_tokens_upper >= s.input_tokens);
        compared.set(compared.get() + 1);
        worst_ratio.set(worst_ratio.get().min(upper as f64 / s.input_tokens.max(1) as f64));
        Ok(())
    });
    let (compared, refused, worst_ratio) = (compared.get(), refused.get(), worst_ratio.get());
    eprintln!(
        "bound property: {compared} requests compared, {refused} refused by the simulator, \
         tightest bound/simulator ratio {worst_ratio:.2}"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(compared >= CASES * 3 / 4, "only {compared} of {CASES} generated requests were valid");
}

/// A case the property above once found: a thinking block whose `signature` the simulator
/// counts (as it counts every field of such a block) while the bound skipped it.
#[test]
fn a_thinking_signature_counts_in_the_worst_case() {
    let p = json!({"model": "claude-haiku-4-5", "max_tokens": 1, "messages": [{"role": "user",
        "content": [{"type": "thinking", "thinking": "",
                     "signature": "a0\u{ac00}a0\u{ac00}a0\u{ac00}a0\u{ac00}0a0\u{ac00}\u{300}a0\u{ac00}"}]}]});
    let s = summarize(p.as_object().unwrap(), &models(), Mode::Batch);
    assert!(s.invalid.is_none(), "{:?}", s.invalid);
    let upper = request_input_upper_bound(&serde_json::to_vec(&p).unwrap()).unwrap();
    assert!(upper >= s.input_tokens, "bound {upper} < simulator {}", s.input_tokens);
}

/// One result line with arbitrary, often absurd, usage numbers and models.
fn result_line() -> impl Strategy<Value = Vec<u8>> {
    let model = prop_oneof![
        prop::sample::select(strategies::MODELS.to_vec()).prop_map(str::to_string),
        Just("gpt-5".to_string()),
        strategies::text(12),
    ];
    let n = prop_oneof![any::<u64>(), 0u64..100_000, Just(u64::MAX)];
    let usage = (n.clone(), n.clone(), n.clone(), n.clone(), n.clone(), n, any::<bool>());
    let kind = prop::sample::select(vec!["succeeded", "errored", "canceled", "expired", "x"]);
    (model, usage, kind, strategies::json_value()).prop_map(|(model, u, kind, junk)| {
        let (i, o, w5, w1, r, s, geo) = u;
        let line = json!({"custom_id": "c", "result": {"type": kind, "message": {
            "id": "m", "type": "message", "role": "assistant", "model": model, "content": junk,
            "stop_reason": "end_turn", "usage": {"input_tokens": i, "output_tokens": o,
            "cache_creation_input_tokens": w5 / 2, "cache_read_input_tokens": r,
            "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1},
            "server_tool_use": {"web_search_requests": s},
            "inference_geo": if geo { "us" } else { "global" }}},
            "error": {"type": "error", "error": {"type": "api_error", "message": "m"}}}});
        serde_json::to_vec(&line).unwrap()
    })
}

proptest! {
    #![proptest_config(cases(2_000))]

    /// (b) The results parser: any bytes, never a panic.
    #[test]
    fn the_results_parser_survives_any_bytes(
        lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..6),
    ) {
        let t = table();
        let mut tally = Tally::new(&Lines, &t, Timestamp::now(), Some("claude-haiku-4-5".into()));
        for l in &lines {
            let _ = tally.add_line(l);
        }
        let _ = tally.finish();
    }

    /// (b) Well-formed lines with absurd numbers (sums past u64, unknown models): an
    /// error or a total, never a panic or a silently wrapped count.
    #[test]
    fn the_results_parser_survives_absurd_usage(
        lines in prop::collection::vec(result_line(), 1..8), fallback in any::<bool>(),
    ) {
        let t = table();
        let fb = fallback.then(|| "claude-haiku-4-5".to_string());
        let mut tally = Tally::new(&Lines, &t, Timestamp::now(), fb);
        let mut ok = true;
        for l in &lines {
            ok &= tally.add_line(l).is_ok();
        }
        let usage = tally.finish();
        if ok {
            let parsed: Vec<Value> = lines.iter().map(|l| serde_json::from_slice(l).unwrap()).collect();
            let want: u128 = parsed
                .iter()
                .filter(|v| v["result"]["type"] == "succeeded")
                .map(|v| u128::from(v["result"]["message"]["usage"]["input_tokens"].as_u64().unwrap()))
                .sum();
            let got: u128 = usage.iter().map(|m| u128::from(m.tokens.input)).sum();
            prop_assert_eq!(got, want, "input tokens summed wrong (wrapped?)");
        }
    }
}

/// (c) end to end: generated requests through the gateway and a real simulator batch; every
/// result's input + cache writes + cache reads is within that request's bound, and the
/// settled cost within the reservation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_real_batch_every_result_is_within_its_bound() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let known = models();
    let mut params = Vec::new();
    while params.len() < 120 {
        let p = strategies::params().new_tree(&mut runner).unwrap().current();
        if summarize(p.as_object().unwrap(), &known, Mode::Batch).invalid.is_none() {
            params.push(p);
        }
    }
    let clock = std::sync::Arc::new(batchcost::clock::SystemClock);
    let h = common::harness(vec![], clock, common::sim_config()).await;
    let requests: Vec<Value> = params
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"custom_id": format!("r{i}"), "params": p}))
        .collect();
    let (status, v, _) = h.submit("alpha-key", &json!({ "requests": requests })).await;
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let rec = h.wait_settled(&id).await;
    let text = h.results("alpha-key", &id).await;
    let mut checked = 0;
    for line in text.lines() {
        let l: Value = serde_json::from_str(line).unwrap();
        if l["result"]["type"] != "succeeded" {
            continue;
        }
        let i: usize = l["custom_id"].as_str().unwrap()[1..].parse().unwrap();
        let u = &l["result"]["message"]["usage"];
        let used = ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
            .iter()
            .map(|k| u[k].as_u64().unwrap_or(0))
            .sum::<u64>();
        let bound = request_input_upper_bound(&serde_json::to_vec(&params[i]).unwrap()).unwrap();
        assert!(
            used <= bound,
            "request {i}: simulator reported {used} input tokens, bound {bound}"
        );
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} results succeeded");
    let (cost, reserved) =
        (rec["cost_usd"].as_str().unwrap(), rec["reserved_usd"].as_str().unwrap());
    let picos = |s: &str| batchcost::money::Money::parse_usd(s).unwrap().picos();
    assert!(picos(cost) <= picos(reserved), "cost {cost} above the reservation {reserved}");
    eprintln!(
        "real batch: {checked} results within their bounds; cost {cost} of {reserved} reserved"
    );
    h.stop().await;
}
