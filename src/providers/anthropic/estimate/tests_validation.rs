//! Every refusal names where the problem is; these are the 400 messages the gateway sends.

use serde_json::{Value, json};

use super::testutil::table;
use super::*;
use crate::estimate::MAX_REQUESTS;

fn err(body: &str) -> String {
    let opts = EstimateOptions::new(
        jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(500_000),
        0.5,
    );
    match estimate_bytes(body.as_bytes(), &table(), &opts) {
        Ok(e) => panic!("accepted {body}: {e:?}"),
        Err(e) => e.message(),
    }
}

fn ok_params() -> Value {
    json!({"model": "claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

/// A body whose request 1 has `params[key] = value` (request 0 is valid).
fn with(key: &str, value: Value) -> String {
    let mut p = ok_params();
    p[key] = value;
    json!({"requests": [{"custom_id": "ok", "params": ok_params()}, {"custom_id": "r1", "params": p}]}).to_string()
}

fn without(key: &str) -> String {
    let mut p = ok_params();
    p.as_object_mut().expect("object").remove(key);
    json!({"requests": [{"custom_id": "r0", "params": p}]}).to_string()
}

#[test]
fn malformed_json_names_line_and_column() {
    assert_eq!(
        err("{\"requests\": [\n"),
        "requests[0]: malformed JSON at line 2 column 0: EOF while parsing a list"
    );
    let m = err("{\"requests\": [{\"custom_id\": \"a\", \"params\": {\"model\": }}]}");
    assert!(
        m.starts_with("requests[0]: malformed JSON at line 1 column 54: expected value"),
        "{m}"
    );
    assert_eq!(err(""), "body is empty");
}

#[test]
fn the_body_must_be_an_object_with_a_requests_array() {
    assert_eq!(
        err("[1]"),
        "body: must be a JSON object with a `requests` array (or JSONL), got an array"
    );
    assert_eq!(err("{}"), "body.requests: is required");
    assert_eq!(
        err(r#"{"requests": [], "x": 1}"#),
        "requests: a batch holds 1 to 100000 requests, got 0"
    );
    assert_eq!(err(r#"{"x": 1}"#), "body.x: unknown field, a batch body has only `requests`");
    assert_eq!(err(r#"{"requests": {}}"#), "body.requests: must be an array, got an object");
    assert_eq!(
        err(r#"{"requests": [1]}"#),
        "requests[0]: must be an object with custom_id and params, got 1"
    );
}

#[test]
fn more_than_100000_requests_are_refused() {
    let one = r#"{"custom_id":"X","params":{"model":"claude-small","max_tokens":1,"messages":[]}}"#;
    let mut body = String::from(r#"{"requests":["#);
    for i in 0..=MAX_REQUESTS {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&one.replace('X', &i.to_string()));
    }
    body.push_str("]}");
    assert_eq!(err(&body), "requests: a batch holds 1 to 100000 requests, got more than 100000");
}

#[test]
fn custom_ids_must_match_the_pattern_and_be_unique() {
    let body =
        |id: Value| json!({"requests": [{"custom_id": id, "params": ok_params()}]}).to_string();
    assert_eq!(
        err(&body(json!("a b"))),
        r#"requests[0].custom_id: must match ^[a-zA-Z0-9_-]{1,64}$, got "a b""#
    );
    assert!(err(&body(json!(""))).starts_with("requests[0].custom_id: must match"));
    assert!(err(&body(json!("x".repeat(65)))).starts_with("requests[0].custom_id: must match"));
    assert_eq!(err(&body(json!(5))), "requests[0].custom_id: must be a string, got 5");
    let dup = json!({"requests": [
        {"custom_id": "a", "params": ok_params()},
        {"custom_id": "b", "params": ok_params()},
        {"custom_id": "a", "params": ok_params()}]});
    assert_eq!(
        err(&dup.to_string()),
        "requests[2].custom_id: duplicates the custom_id of requests[0]"
    );
    let missing = json!({"requests": [{"params": ok_params()}]}).to_string();
    assert_eq!(err(&missing), "requests[0].custom_id: is required");
    let extra =
        json!({"requests": [{"custom_id": "a", "params": ok_params(), "x": 1}]}).to_string();
    assert_eq!(err(&extra), "requests[0].x: unknown field");
    let no_params = json!({"requests": [{"custom_id": "a"}]}).to_string();
    assert_eq!(err(&no_params), "requests[0].params: is required");
}

#[test]
fn model_must_be_a_known_string() {
    assert_eq!(err(&without("model")), "requests[0].params.model: is required");
    assert_eq!(err(&with("model", json!(5))), "requests[1].params.model: must be a string, got 5");
    assert_eq!(
        err(&with("model", json!("gpt-9"))),
        r#"requests[1].params.model: model "gpt-9" is not in the price table"#
    );
}

#[test]
fn max_tokens_must_be_an_integer_in_range() {
    assert_eq!(err(&without("max_tokens")), "requests[0].params.max_tokens: is required");
    let range = "requests[1].params.max_tokens: must be an integer >= 1 and <= 300000, got";
    assert_eq!(err(&with("max_tokens", json!(0))), format!("{range} 0"));
    assert_eq!(err(&with("max_tokens", json!(-3))), format!("{range} -3"));
    assert_eq!(err(&with("max_tokens", json!(300_001))), format!("{range} 300001"));
    let typed = "requests[1].params.max_tokens: must be an integer >= 1, got";
    assert_eq!(err(&with("max_tokens", json!("100"))), format!(r#"{typed} "100""#));
    assert_eq!(err(&with("max_tokens", json!(1.5))), format!("{typed} 1.5"));
}

#[test]
fn messages_and_blocks_must_have_the_right_types() {
    assert_eq!(err(&without("messages")), "requests[0].params.messages: is required");
    assert_eq!(
        err(&with("messages", json!("hi"))),
        r#"requests[1].params.messages: must be an array of messages, got "hi""#
    );
    let msg = |m: Value| with("messages", json!([m]));
    assert_eq!(
        err(&msg(json!({"role": "bot", "content": "x"}))),
        r#"requests[1].params.messages[0].role: must be "user" or "assistant", got "bot""#
    );
    assert_eq!(
        err(&msg(json!({"role": "user", "content": 5}))),
        "requests[1].params.messages[0].content: must be a string or an array of content blocks, got 5"
    );
    assert_eq!(
        err(&msg(json!({"role": "user"}))),
        "requests[1].params.messages[0].content: is required"
    );
    let blocks = json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]});
    assert_eq!(err(&msg(blocks)), "requests[1].params.messages[0].content[1].type: is required");
    let image = json!({"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": 7}}]});
    assert_eq!(
        err(&msg(image)),
        "requests[1].params.messages[0].content[0].source.data: must be a string, got 7"
    );
    assert_eq!(
        err(&with("system", json!(3))),
        "requests[1].params.system: must be a string or an array of text blocks, got 3"
    );
    assert_eq!(
        err(&with("tools", json!([1]))),
        "requests[1].params.tools[0]: must be a tool object, got 1"
    );
    // Unknown params fields are the upstream's to judge (they are counted as input).
    let opts = EstimateOptions::new(
        jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(500_000),
        0.5,
    );
    assert!(
        estimate_bytes(with("output_config", json!({"x": 1})).as_bytes(), &table(), &opts).is_ok()
    );
}

#[test]
fn streaming_and_bad_cache_control_are_refused() {
    assert_eq!(
        err(&with("stream", json!(true))),
        "requests[1].params.stream: must be false or absent: a batch cannot stream"
    );
    assert_eq!(
        err(&with("stream", json!("yes"))),
        r#"requests[1].params.stream: must be a boolean, got "yes""#
    );
    assert_eq!(
        err(&with("cache_control", json!({"type": "ephemeral", "ttl": "2h"}))),
        r#"requests[1].params.cache_control.ttl: must be "5m" or "1h", got "2h""#
    );
}

#[test]
fn jsonl_errors_name_the_line() {
    let good = json!({"custom_id": "a", "params": ok_params()}).to_string();
    let mut bad = ok_params();
    bad["max_tokens"] = json!(0);
    let bad = json!({"custom_id": "b", "params": bad}).to_string();
    assert_eq!(
        err(&format!("{good}\n\n{bad}\n")),
        "line 3: requests[1].params.max_tokens: must be an integer >= 1 and <= 300000, got 0"
    );
    let m = err(&format!("{good}\n{{\"custom_id\": \"c\", \"params\": {{\n"));
    assert!(m.starts_with("line 2: requests[1]: malformed JSON at line 2 column "), "{m}");
    assert_eq!(err("\n\n"), "body is empty");
}
