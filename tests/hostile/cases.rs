//! The hostile-input corpus: every case is the exact bytes sent on a fresh connection, the
//! status and `error.type` expected back, and a piece of the message that must name what
//! is wrong (the request index and field for a bad batch body).

use serde_json::{Value, json};

use super::raw::{head, request};

/// Project `alpha`'s key: the hostile client. Project `beta` is the bystander.
pub const KEY: &[u8] = b"alpha-key";

pub struct Case {
    pub name: String,
    pub bytes: Vec<u8>,
    pub status: u16,
    /// Expected `error.type`; empty when the answer comes from the HTTP layer itself
    /// (hyper answers malformed or oversized heads before any handler, without a body).
    pub etype: &'static str,
    /// Must appear in `error.message`.
    pub needle: String,
}

fn case(name: &str, bytes: Vec<u8>, status: u16, etype: &'static str, needle: &str) -> Case {
    Case { name: name.into(), bytes, status, etype, needle: needle.into() }
}

/// A create request carrying `body` as is.
pub fn submit(body: &[u8]) -> Vec<u8> {
    submit_with(KEY, body)
}

fn submit_with(key: &[u8], body: &[u8]) -> Vec<u8> {
    request(
        "POST",
        b"/v1/messages/batches",
        &[
            ("x-api-key", key),
            ("anthropic-version", b"2023-06-01"),
            ("content-type", b"application/json"),
        ],
        body,
    )
}

fn get(path: &[u8], headers: &[(&str, &[u8])]) -> Vec<u8> {
    request("GET", path, headers, b"")
}

pub fn params() -> Value {
    json!({"model": "claude-haiku-4-5", "max_tokens": 16,
           "messages": [{"role": "user", "content": "Say hi."}]})
}

/// A valid two-request body, changed by `f`.
fn body(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = json!({"requests": [
        {"custom_id": "a-0", "params": params()},
        {"custom_id": "a-1", "params": params()},
    ]});
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// Second request's params changed by `f`.
fn p1(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    body(|v| f(&mut v["requests"][1]["params"]))
}

/// [`body`] as a create request.
fn sbody(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    submit(&body(f))
}

/// [`p1`] as a create request.
fn sp1(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    submit(&p1(f))
}

/// `n` minimal requests, written directly (100,001 of them through `Value` is slow).
pub fn many(n: usize) -> Vec<u8> {
    let mut out = b"{\"requests\":[".to_vec();
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(
            format!(
                "{{\"custom_id\":\"r{i}\",\"params\":{{\"model\":\"claude-haiku-4-5\",\
                 \"max_tokens\":1,\"messages\":[{{\"role\":\"user\",\"content\":\"x\"}}]}}}}"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"]}");
    out
}

/// Request 0 with a `tool_choice` nested `depth` levels deep (`open` then `close` each
/// level): a field the estimator walks as free-form JSON.
fn deep(depth: usize, open: &str, close: &str) -> Vec<u8> {
    let valid = body(|_| {});
    let text = String::from_utf8(valid).unwrap();
    let nested = format!("\"tool_choice\":{}1{},", open.repeat(depth), close.repeat(depth));
    text.replacen("\"max_tokens\"", &format!("{nested}\"max_tokens\""), 1).into_bytes()
}

/// Every case but the streamed ones (see the runner).
pub fn corpus(other_projects_batch: &str) -> Vec<Case> {
    const BAD: u16 = 400;
    const IRE: &str = "invalid_request_error";
    let valid = body(|_| {});
    let valid_text = String::from_utf8(valid.clone()).unwrap();
    let mut invalid_utf8 = valid.clone();
    let at = valid_text.find("Say hi.").unwrap();
    invalid_utf8[at + 1] = 0xFF;
    let mut nul_in_string = valid.clone();
    nul_in_string[at + 1] = 0x00;
    let huge = "x".repeat(64 * 1024 * 1024);
    let mut cases = vec![
        // Malformed and truncated JSON.
        case("empty body", submit(b""), BAD, IRE, "body"),
        case("whitespace body", submit(b" \n\t "), BAD, IRE, "body"),
        case("not JSON", submit(b"hello"), BAD, IRE, "expected a JSON object"),
        case("truncated after a key", submit(&valid[..valid.len() / 2]), BAD, IRE, "line 1"),
        case("truncated mid-string", submit(&valid[..at + 3]), BAD, IRE, "requests[0]"),
        case("one byte", submit(b"{"), BAD, IRE, "malformed JSON"),
        case("trailing garbage", submit(&[&valid[..], b" {}"].concat()), BAD, IRE, "malformed"),
        case("top-level array", submit(b"[]"), BAD, IRE, "JSON object"),
        case("top-level null", submit(b"null"), BAD, IRE, "JSON object"),
        case("JSON Lines body", submit(&many_lines()), BAD, IRE, "JSON Lines"),
        // Wrong types and shapes.
        case("requests missing", submit(b"{}"), BAD, IRE, "requests"),
        case("requests an object", submit(br#"{"requests":{}}"#), BAD, IRE, "requests"),
        case("requests empty", submit(br#"{"requests":[]}"#), BAD, IRE, "got 0"),
        case("request a string", submit(br#"{"requests":["x"]}"#), BAD, IRE, "requests[0]"),
        case(
            "unknown request key",
            sbody(|v| v["requests"][1]["priority"] = json!(1)),
            BAD,
            IRE,
            "requests[1].priority",
        ),
        case(
            "params missing",
            sbody(|v| {
                v["requests"][1].as_object_mut().unwrap().remove("params");
            }),
            BAD,
            IRE,
            "requests[1].params",
        ),
        case(
            "params an array",
            sbody(|v| v["requests"][1]["params"] = json!([])),
            BAD,
            IRE,
            "requests[1].params",
        ),
        // custom_id.
        case(
            "custom_id missing",
            sbody(|v| {
                v["requests"][1].as_object_mut().unwrap().remove("custom_id");
            }),
            BAD,
            IRE,
            "requests[1].custom_id",
        ),
        case(
            "custom_id a number",
            sbody(|v| v["requests"][1]["custom_id"] = json!(7)),
            BAD,
            IRE,
            "requests[1].custom_id",
        ),
        case(
            "custom_id empty",
            sbody(|v| v["requests"][1]["custom_id"] = json!("")),
            BAD,
            IRE,
            "requests[1].custom_id",
        ),
        case(
            "custom_id with a space",
            sbody(|v| v["requests"][1]["custom_id"] = json!("a b")),
            BAD,
            IRE,
            "requests[1].custom_id",
        ),
        case(
            "custom_id 65 chars",
            sbody(|v| v["requests"][1]["custom_id"] = json!("c".repeat(65))),
            BAD,
            IRE,
            "requests[1].custom_id",
        ),
        case(
            "custom_id non-ASCII",
            sbody(|v| v["requests"][1]["custom_id"] = json!("요청-1")),
            BAD,
            IRE,
            "requests[1].custom_id",
        ),
        case(
            "custom_id duplicate",
            sbody(|v| v["requests"][1]["custom_id"] = json!("a-0")),
            BAD,
            IRE,
            "requests[1].custom_id",
        ),
        case(
            "custom_id 64 MB",
            sbody(|v| v["requests"][1]["custom_id"] = json!(huge)),
            BAD,
            IRE,
            "requests[1].custom_id",
        ),
        // model.
        case(
            "model missing",
            sp1(|p| {
                p.as_object_mut().unwrap().remove("model");
            }),
            BAD,
            IRE,
            "requests[1].params.model",
        ),
        case(
            "model a number",
            sp1(|p| p["model"] = json!(4)),
            BAD,
            IRE,
            "requests[1].params.model",
        ),
        case(
            "model unknown",
            sp1(|p| p["model"] = json!("claude-nonexistent-9")),
            BAD,
            IRE,
            "requests[1].params.model",
        ),
        case(
            "model of another provider",
            sp1(|p| p["model"] = json!("gpt-4o")),
            BAD,
            IRE,
            "requests[1].params.model",
        ),
        case("model empty", sp1(|p| p["model"] = json!("")), BAD, IRE, "requests[1].params.model"),
        // max_tokens.
        case(
            "max_tokens missing",
            sp1(|p| {
                p.as_object_mut().unwrap().remove("max_tokens");
            }),
            BAD,
            IRE,
            "requests[1].params.max_tokens",
        ),
        case(
            "max_tokens zero",
            sp1(|p| p["max_tokens"] = json!(0)),
            BAD,
            IRE,
            "requests[1].params.max_tokens",
        ),
        case(
            "max_tokens negative",
            sp1(|p| p["max_tokens"] = json!(-5)),
            BAD,
            IRE,
            "requests[1].params.max_tokens",
        ),
        case(
            "max_tokens absurd",
            sp1(|p| p["max_tokens"] = json!(1_000_000_000u64)),
            BAD,
            IRE,
            "requests[1].params.max_tokens",
        ),
        case(
            "max_tokens past u64",
            submit(valid_text.replacen("16", "123456789012345678901234567890", 1).as_bytes()),
            BAD,
            IRE,
            "requests[0]",
        ),
        case(
            "max_tokens 1e400",
            submit(valid_text.replacen("16", "1e400", 1).as_bytes()),
            BAD,
            IRE,
            "requests[0]",
        ),
        case(
            "max_tokens a float",
            sp1(|p| p["max_tokens"] = json!(1.5)),
            BAD,
            IRE,
            "requests[1].params.max_tokens",
        ),
        case(
            "max_tokens a string",
            sp1(|p| p["max_tokens"] = json!("16")),
            BAD,
            IRE,
            "requests[1].params.max_tokens",
        ),
        // messages and the rest.
        case(
            "messages missing",
            sp1(|p| {
                p.as_object_mut().unwrap().remove("messages");
            }),
            BAD,
            IRE,
            "requests[1].params.messages",
        ),
        case(
            "messages a string",
            sp1(|p| p["messages"] = json!("hi")),
            BAD,
            IRE,
            "requests[1].params.messages",
        ),
        case(
            "stream true",
            sp1(|p| p["stream"] = json!(true)),
            BAD,
            IRE,
            "requests[1].params.stream",
        ),
        // Encoding and depth.
        case("invalid UTF-8 in a string", submit(&invalid_utf8), BAD, IRE, "requests[0]"),
        case("NUL byte in a string", submit(&nul_in_string), BAD, IRE, "requests[0]"),
        case(
            "lone surrogate escape",
            submit(valid_text.replacen("Say hi.", "\\ud800", 1).as_bytes()),
            BAD,
            IRE,
            "requests[0]",
        ),
        case("arrays 200 deep", submit(&deep(200, "[", "]")), BAD, IRE, "requests[0]"),
        case("arrays 5,000 deep", submit(&deep(5_000, "[", "]")), BAD, IRE, "requests[0]"),
        case(
            "objects 100,000 deep",
            submit(&deep(100_000, "{\"a\":", "}")),
            BAD,
            IRE,
            "requests[0]",
        ),
        case(
            "arrays 1,000,000 deep, unclosed",
            submit(&deep(1_000_000, "[", "")),
            BAD,
            IRE,
            "requests[0]",
        ),
        // Count.
        case("100,001 requests", submit(&many(100_001)), BAD, IRE, "1 to 100000"),
        // Too large, declared.
        case(
            "Content-Length over 256 MB",
            [
                head(
                    "POST",
                    b"/v1/messages/batches",
                    &[("x-api-key", KEY), ("content-length", b"268435457")],
                ),
                b"{\"requests\":[".to_vec(),
            ]
            .concat(),
            413,
            "request_too_large",
            "256 MB",
        ),
        // Keys.
        case("no key", submit_with_headers(&[], &valid), 401, "authentication_error", "x-api-key"),
        case("wrong key", submit_with(b"alpha-key-x", &valid), 401, "authentication_error", ""),
        case("empty key", submit_with(b"", &valid), 401, "authentication_error", ""),
        case("key prefix", submit_with(b"alpha", &valid), 401, "authentication_error", ""),
        case(
            "key with invalid UTF-8",
            submit_with(b"alpha-key\xff", &valid),
            401,
            "authentication_error",
            "",
        ),
        case(
            "admin token as project key",
            submit_with(b"harness-admin-token", &valid),
            401,
            "authentication_error",
            "",
        ),
        case(
            "wrong bearer",
            submit_with_headers(&[("authorization", b"Bearer beta-keyy")], &valid),
            401,
            "authentication_error",
            "",
        ),
        case(
            "basic auth scheme",
            submit_with_headers(&[("authorization", b"Basic YWxwaGEta2V5")], &valid),
            401,
            "authentication_error",
            "",
        ),
        case("budgets without token", get(b"/api/budgets", &[]), 401, "authentication_error", ""),
        case(
            "budgets with a project key",
            get(b"/api/budgets", &[("authorization", b"Bearer alpha-key")]),
            401,
            "authentication_error",
            "",
        ),
        case("metrics without token", get(b"/metrics", &[]), 401, "authentication_error", ""),
        case(
            "estimate with a wrong token",
            request("POST", b"/api/estimate", &[("authorization", b"Bearer nope")], &valid),
            401,
            "authentication_error",
            "",
        ),
        // Ids.
        case(
            "another project's batch",
            get(
                format!("/v1/messages/batches/{other_projects_batch}").as_bytes(),
                &[("x-api-key", KEY)],
            ),
            404,
            "not_found_error",
            other_projects_batch,
        ),
        case(
            "another project's results",
            get(
                format!("/v1/messages/batches/{other_projects_batch}/results").as_bytes(),
                &[("x-api-key", KEY)],
            ),
            404,
            "not_found_error",
            "not found",
        ),
        case(
            "cancel another project's batch",
            request(
                "POST",
                format!("/v1/messages/batches/{other_projects_batch}/cancel").as_bytes(),
                &[("x-api-key", KEY)],
                b"",
            ),
            404,
            "not_found_error",
            "not found",
        ),
        case(
            "delete another project's batch",
            request(
                "DELETE",
                format!("/v1/messages/batches/{other_projects_batch}").as_bytes(),
                &[("x-api-key", KEY)],
                b"",
            ),
            404,
            "not_found_error",
            "not found",
        ),
        case(
            "unknown id",
            get(b"/v1/messages/batches/msgbatch_nope", &[("x-api-key", KEY)]),
            404,
            "not_found_error",
            "",
        ),
        case(
            "dot-dot id",
            get(b"/v1/messages/batches/..%2F..%2Fapi%2Fbudgets", &[("x-api-key", KEY)]),
            404,
            "not_found_error",
            "",
        ),
        case(
            "percent-encoded NUL id",
            get(b"/v1/messages/batches/msgbatch_%00", &[("x-api-key", KEY)]),
            404,
            "not_found_error",
            "",
        ),
        case(
            "invalid UTF-8 id",
            get(b"/v1/messages/batches/%FF%FE", &[("x-api-key", KEY)]),
            BAD,
            IRE,
            "",
        ),
        case(
            "SQL in the id",
            get(b"/v1/messages/batches/x'%20OR%20'1'='1", &[("x-api-key", KEY)]),
            404,
            "not_found_error",
            "",
        ),
        case(
            "10,000-char id",
            get(
                format!("/v1/messages/batches/{}", "b".repeat(10_000)).as_bytes(),
                &[("x-api-key", KEY)],
            ),
            404,
            "not_found_error",
            "",
        ),
        case(
            "emoji id",
            get(b"/v1/messages/batches/%F0%9F%98%80", &[("x-api-key", KEY)]),
            404,
            "not_found_error",
            "",
        ),
        case(
            "unknown route",
            get(b"/v1/nothing", &[("x-api-key", KEY)]),
            404,
            "not_found_error",
            "",
        ),
        case(
            "wrong method",
            request("PUT", b"/v1/messages/batches", &[("x-api-key", KEY)], b""),
            405,
            "invalid_request_error",
            "",
        ),
        case(
            "list limit zero",
            get(b"/v1/messages/batches?limit=0", &[("x-api-key", KEY)]),
            BAD,
            IRE,
            "limit",
        ),
        // Broken heads: hyper answers before any handler.
        case(
            "header 1 MB long",
            head("GET", b"/healthz", &[("x-junk", "j".repeat(1024 * 1024).as_bytes())]),
            431,
            "",
            "",
        ),
        case("200 headers", head("GET", b"/healthz", &many_headers(200)), 431, "", ""),
        case(
            "Content-Length not a number",
            head(
                "POST",
                b"/v1/messages/batches",
                &[("x-api-key", KEY), ("content-length", b"ten")],
            ),
            BAD,
            "",
            "",
        ),
        case(
            "two Content-Lengths",
            head(
                "POST",
                b"/v1/messages/batches",
                &[("x-api-key", KEY), ("content-length", b"5"), ("content-length", b"6")],
            ),
            BAD,
            "",
            "",
        ),
        case("garbage request line", b"HELLO\r\n\r\n".to_vec(), BAD, "", ""),
    ];
    cases.retain(|c| !c.bytes.is_empty());
    cases
}

fn submit_with_headers(extra: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut headers: Vec<(&str, &[u8])> = vec![("anthropic-version", b"2023-06-01")];
    headers.extend_from_slice(extra);
    request("POST", b"/v1/messages/batches", &headers, body)
}

fn many_headers(n: usize) -> Vec<(&'static str, &'static [u8])> {
    (0..n).map(|_| ("x-many", &b"1"[..])).collect()
}

fn many_lines() -> Vec<u8> {
    let line = |i: usize| json!({"custom_id": format!("l-{i}"), "params": params()}).to_string();
    format!("{}\n{}\n", line(0), line(1)).into_bytes()
}
