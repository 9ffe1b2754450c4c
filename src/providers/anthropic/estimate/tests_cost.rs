//! Token counting per block type, cache breakpoints, formats, fingerprint and cost.

use serde_json::{Value, json};

use super::content::{BLOCK_OVERHEAD, MESSAGE_OVERHEAD, SYSTEM_OVERHEAD};
use super::media::{IMAGE_UNKNOWN, image_tokens};
use super::prompt::REQUEST_OVERHEAD;
use super::testutil::{b64, png, table};
use super::tools::{TOOL_OVERHEAD, TOOLS_PROMPT, WEB_SEARCHES_UNCAPPED};
use super::*;
use crate::estimate::BodyFormat;
use crate::money::Money;

fn upper(params: &Value) -> u64 {
    request_input_upper_bound(params.to_string().as_bytes()).expect("valid params")
}

fn params(content: Value) -> Value {
    json!({"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": content}]})
}

/// Framing of a request with one message.
fn framing() -> u64 {
    REQUEST_OVERHEAD.upper + MESSAGE_OVERHEAD.upper
}

fn estimate(reqs: &[Value]) -> Estimate {
    let body = json!({ "requests": reqs }).to_string();
    let opts = EstimateOptions::new(
        jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(500_000),
        0.5,
    );
    estimate_bytes(body.as_bytes(), &table(), &opts).expect("valid body")
}

fn req(id: &str, params: Value) -> Value {
    json!({"custom_id": id, "params": params})
}

#[test]
fn text_is_bounded_by_its_utf8_bytes_plus_framing() {
    assert_eq!(upper(&params(json!("hello"))), framing() + 5);
    assert_eq!(upper(&params(json!("안녕"))), framing() + 6);
    let block = json!([{"type": "text", "text": "hello"}]);
    assert_eq!(upper(&params(block)), framing() + BLOCK_OVERHEAD.upper + 5);
}

#[test]
fn system_prompt_counts_as_string_or_blocks() {
    let mut p = params(json!("x"));
    p["system"] = json!("abc");
    assert_eq!(upper(&p), framing() + 1 + SYSTEM_OVERHEAD.upper + 3);
    p["system"] = json!([{"type": "text", "text": "abc"}]);
    assert_eq!(upper(&p), framing() + 1 + SYSTEM_OVERHEAD.upper + BLOCK_OVERHEAD.upper + 3);
}

#[test]
fn images_are_priced_from_their_header_or_the_cap() {
    let data = b64(&png(750, 750));
    let block = json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}]);
    let expected = framing() + BLOCK_OVERHEAD.upper + image_tokens(750, 750).upper;
    assert_eq!(upper(&params(block)), expected);
    let url =
        json!([{"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]);
    assert_eq!(upper(&params(url)), framing() + BLOCK_OVERHEAD.upper + IMAGE_UNKNOWN.upper);
}

#[test]
fn documents_count_pdf_pages_or_text() {
    let pdf = b64(b"%PDF-1.4 << /Type /Page >> << /Type /Page >> << /Type /Pages /Count 2 >>");
    let doc = |source: Value| params(json!([{"type": "document", "source": source}]));
    let two_pages =
        upper(&doc(json!({"type": "base64", "media_type": "application/pdf", "data": pdf})));
    let by_url = upper(&doc(json!({"type": "url", "url": "https://example.com/a.pdf"})));
    assert_eq!(
        by_url - framing() - BLOCK_OVERHEAD.upper,
        50 * (two_pages - framing() - BLOCK_OVERHEAD.upper)
    );
    let text = doc(json!({"type": "text", "media_type": "text/plain", "data": "plain words"}));
    assert_eq!(upper(&text), framing() + BLOCK_OVERHEAD.upper + 11);
}

#[test]
fn tool_use_and_tool_result_count_their_json() {
    // Strings: "id" "t1" "name" "f" "input" "a" = 15 bytes; five values at depth 1 or 2:
    // id, name, input (4 + 2 each) and the number 1 (4 + 4 + 1 digit).
    let tool_use = json!([{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]);
    let n = upper(&params(tool_use.clone())) - framing() - BLOCK_OVERHEAD.upper;
    assert_eq!(n, 15 + 3 * 6 + 9);
    assert!(n as usize >= tool_use[0].to_string().len() - r#"{"type":"tool_use",}"#.len());
    let result = json!([{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "result"}]}]);
    let n = upper(&params(result)) - framing();
    assert_eq!(n, BLOCK_OVERHEAD.upper + 11 + 2 + 6 + BLOCK_OVERHEAD.upper + 6);
}

#[test]
fn tools_bring_the_tool_prompt_once() {
    let mut p = params(json!("x"));
    let base = upper(&p);
    p["tools"] = json!([{"name": "a"}, {"name": "b"}]);
    let each = TOOL_OVERHEAD.upper + 4 + 1 + 6;
    assert_eq!(upper(&p) - base, TOOLS_PROMPT.upper + 2 * each);
    p["tools"] = json!([]);
    assert_eq!(upper(&p), base);
}

#[test]
fn web_search_tools_bound_the_searches() {
    let mut p = params(json!("x"));
    p["tools"] = json!([{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]);
    assert_eq!(estimate(&[req("a", p.clone())]).models[0].web_search_requests_worst, 3);
    p["tools"][0].as_object_mut().expect("object").remove("max_uses");
    let e = estimate(&[req("a", p)]);
    assert_eq!(e.models[0].web_search_requests_worst, WEB_SEARCHES_UNCAPPED);
}

fn with_system(ttl: Option<&str>) -> Value {
    let mut cc = json!({"type": "ephemeral"});
    if let Some(t) = ttl {
        cc["ttl"] = json!(t);
    }
    let mut p = params(json!("the question"));
    p["tools"] = json!([{"name": "lookup", "input_schema": {"type": "object"}}]);
    p["system"] = json!([{"type": "text", "text": "You answer questions.", "cache_control": cc}]);
    p
}

#[test]
fn a_system_breakpoint_writes_tools_and_system_at_its_ttl() {
    let p = with_system(None);
    let mut prefix = p.clone();
    prefix["messages"] = json!([]);
    let m = &estimate(&[req("a", p.clone())]).models[0];
    assert_eq!(m.cache_write_5m_tokens_upper, upper(&prefix));
    assert_eq!(m.cache_write_1h_tokens_upper, 0);
    assert_eq!(m.input_tokens_upper, upper(&p));
    let m = &estimate(&[req("a", with_system(Some("1h")))]).models[0];
    assert_eq!((m.cache_write_5m_tokens_upper, m.cache_write_1h_tokens_upper), (0, upper(&prefix)));
}

#[test]
fn a_message_breakpoint_excludes_later_messages() {
    let first = json!({"role": "user", "content": [{"type": "text", "text": "context", "cache_control": {"type": "ephemeral"}}]});
    let later = json!({"role": "assistant", "content": "a reply that is not cached"});
    let mut p = params(json!("x"));
    p["messages"] = json!([first, later]);
    let mut prefix = p.clone();
    prefix["messages"] = json!([first]);
    let m = &estimate(&[req("a", p.clone())]).models[0];
    assert_eq!(m.cache_write_5m_tokens_upper, upper(&prefix));
    assert_eq!(m.input_tokens_upper, upper(&p));
    // Top-level cache_control caches the whole prompt.
    let mut auto = params(json!("x"));
    auto["cache_control"] = json!({"type": "ephemeral", "ttl": "1h"});
    let m = &estimate(&[req("a", auto.clone())]).models[0];
    assert_eq!(m.cache_write_1h_tokens_upper, upper(&auto));
}

fn long_system(question: &str) -> Value {
    let mut p = params(json!(question));
    let text = "shared context words ".repeat(600);
    p["system"] = json!([{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]);
    p
}

#[test]
fn repeated_prefixes_are_written_once_then_read() {
    let reqs: Vec<Value> =
        (0..3).map(|i| req(&format!("r{i}"), long_system(&format!("q{i}")))).collect();
    let m = &estimate(&reqs).models[0];
    let mut prefix = long_system("q");
    prefix["messages"] = json!([]);
    let one = &estimate(&[req("a", prefix)]).models[0];
    let p = one.input_tokens_expected;
    assert!(p >= 1_024, "prefix long enough to cache: {p}");
    assert_eq!(m.cache_write_tokens_expected, p);
    assert_eq!(m.cache_read_tokens_expected, 2 * p);
    assert_eq!(m.cache_write_5m_tokens_upper, 3 * one.input_tokens_upper);
    // A different model never reads another model's cache.
    let mut other = long_system("q9");
    other["model"] = json!("claude-small");
    let e = estimate(&[reqs[0].clone(), req("o", other)]);
    assert!(e.models.iter().all(|m| m.cache_read_tokens_expected == 0));
}

#[test]
fn short_prefixes_are_not_cached_in_the_expectation() {
    let m = &estimate(&[req("a", with_system(None)), req("b", with_system(None))]).models[0];
    assert_eq!((m.cache_write_tokens_expected, m.cache_read_tokens_expected), (0, 0));
    assert!(m.cache_write_5m_tokens_upper > 0);
}

#[test]
fn json_and_jsonl_bodies_estimate_alike() {
    let reqs = [req("a", params(json!("one"))), req("b", long_system("two"))];
    let json = estimate(&reqs);
    let lines: String = reqs.iter().map(|r| format!("{r}\n\n")).collect();
    let opts = EstimateOptions::new(
        jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(500_000),
        0.5,
    );
    let jsonl = estimate_bytes(lines.as_bytes(), &table(), &opts).expect("valid jsonl");
    assert_eq!((json.format, jsonl.format), (BodyFormat::Json, BodyFormat::Jsonl));
    assert_eq!(serde_json::to_value(&json.models).ok(), serde_json::to_value(&jsonl.models).ok());
    assert_eq!(json.custom_id_fingerprint, jsonl.custom_id_fingerprint);
}

#[test]
fn fingerprint_ignores_order_but_not_ids() {
    let (a, b) = (req("a", params(json!("x"))), req("b", params(json!("y"))));
    let ab = estimate(&[a.clone(), b.clone()]).custom_id_fingerprint;
    assert_eq!(ab, estimate(&[b, a.clone()]).custom_id_fingerprint);
    assert_ne!(ab, estimate(&[a, req("c", params(json!("y")))]).custom_id_fingerprint);
}

#[test]
fn worst_is_never_below_expected() {
    let mut misordered = long_system("q");
    misordered["messages"] = json!([{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]);
    let mut geo = params(json!("안녕하세요 fn main() {}"));
    geo["inference_geo"] = json!("us");
    let bodies = [
        vec![req("a", params(json!("hi")))],
        (0..4).map(|i| req(&format!("r{i}"), long_system("q"))).collect(),
        vec![req("m", misordered.clone()), req("n", misordered)],
        vec![req("g", geo)],
    ];
    for reqs in bodies {
        let e = estimate(&reqs);
        assert!(e.worst.cost >= e.expected.cost && e.worst.list_cost >= e.expected.list_cost);
        for m in &e.models {
            assert!(m.input_tokens_upper >= m.input_tokens_expected, "{m:?}");
            assert!(m.output_tokens_worst >= m.output_tokens_expected);
            assert!(m.worst.cost >= m.expected.cost, "{m:?}");
        }
    }
}

#[test]
fn cost_of_a_tiny_body_matches_the_hand_computation() {
    // 26 input tokens at most (16 request + 8 message + "hi"), 100 output; batch prices
    // $1.50 and $7.50 per million: 26 * 1.5 + 100 * 7.5 = 789 micro-dollars.
    let e = estimate(&[req("a", params(json!("hi")))]);
    let m = &e.models[0];
    assert_eq!((m.input_tokens_upper, m.output_tokens_worst), (26, 100));
    assert_eq!(m.worst.cost, Money::parse_usd("0.000789").expect("decimal"));
    assert_eq!(m.worst.list_cost, Money::parse_usd("0.001578").expect("decimal"));
    // Expected: 4 + 3 framing + 0.89 for "hi" = 7.89 -> 8 tokens; 50 output.
    assert_eq!((m.input_tokens_expected, m.output_tokens_expected), (8, 50));
    assert_eq!(m.expected.cost, Money::parse_usd("0.000387").expect("decimal"));
    // The US region uplifts every token by 1.1; the alias folds into the canonical id.
    let mut us = params(json!("hi"));
    us["inference_geo"] = json!("us");
    us["model"] = json!("claude-test-20260101");
    let e = estimate(&[req("a", us)]);
    assert_eq!(e.models[0].model, "claude-test");
    assert_eq!(e.worst.cost, Money::parse_usd("0.0008679").expect("decimal"));
}

#[test]
fn expected_output_fraction_is_validated_and_applied() {
    let body = json!({"requests": [req("a", params(json!("hi")))]}).to_string();
    let at = jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(500_000);
    let e = estimate_bytes(body.as_bytes(), &table(), &EstimateOptions::new(at, 0.25)).expect("ok");
    assert_eq!(e.models[0].output_tokens_expected, 25);
    let bad = estimate_bytes(body.as_bytes(), &table(), &EstimateOptions::new(at, 1.5));
    assert!(matches!(bad, Err(EstimateError::Options(_))));
}

#[test]
fn json_output_has_exact_decimal_strings() {
    let v = serde_json::to_value(estimate(&[req("a", params(json!("hi")))])).expect("serializes");
    assert_eq!(v["worst"]["cost_usd"], "0.000789");
    assert_eq!(v["models"][0]["worst"]["list_cost_usd"], "0.001578");
    assert_eq!(v["format"], "json");
    assert!(v["custom_id_fingerprint"].is_string());
}
