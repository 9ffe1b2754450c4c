//! Output- and error-file line decoding for settlement (reference batch-apis 2.4,
//! providers-next 2.1 and 3). One line onto an outcome, the answering model and its
//! billable usage, borrowing the strings from the line and skipping the response content
//! without building it.
//!
//! - `response` with a 2xx `status_code`: succeeded, usage from `response.body.usage` in
//!   whichever shape the endpoint uses (chat/completions `prompt_tokens`, Responses
//!   `input_tokens`, embeddings `prompt_tokens` only). A Responses body that is
//!   `incomplete` is still billed for the tokens it used.
//! - `response` with any other status (the endpoint's HTTP error): errored, no cost.
//! - `error.code` `batch_expired` / `batch_cancelled`: expired / canceled, no cost; any
//!   other `error` (also vLLM's plain-string `error`): errored.

use std::borrow::Cow;

use serde::Deserialize;

use super::usage::split;
use super::wire::{LINE_CANCELLED, LINE_EXPIRED};
use crate::usage::TokenUsage;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOutcome {
    Succeeded,
    Errored,
    Canceled,
    Expired,
}

/// One decoded line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'l> {
    pub custom_id: Cow<'l, str>,
    pub outcome: LineOutcome,
    /// The model named in a succeeded response body (often a dated snapshot id).
    pub model: Option<Cow<'l, str>>,
    pub usage: TokenUsage,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    custom_id: Cow<'a, str>,
    #[serde(default, borrow)]
    response: Option<Resp<'a>>,
    #[serde(default, borrow)]
    error: Option<LineErr<'a>>,
}

#[derive(Deserialize)]
struct Resp<'a> {
    status_code: u16,
    /// vLLM sends `null` on errors.
    #[serde(default, borrow)]
    body: Option<Body<'a>>,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Cached {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// Both usage shapes in one: chat/completions/embeddings name `prompt_tokens`, the
/// Responses API `input_tokens`.
#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Cached>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<Cached>,
}

impl Usage {
    fn tokens(&self) -> TokenUsage {
        let cached = |d: Option<Cached>| d.and_then(|d| d.cached_tokens).unwrap_or(0);
        match self.input_tokens {
            Some(input) => {
                split(input, cached(self.input_tokens_details), self.output_tokens.unwrap_or(0))
            }
            None => split(
                self.prompt_tokens.unwrap_or(0),
                cached(self.prompt_tokens_details),
                self.completion_tokens.unwrap_or(0),
            ),
        }
    }
}

/// `error` of a line: OpenAI's `{code, message}`, or a bare message (vLLM).
#[derive(Deserialize)]
#[serde(untagged)]
enum LineErr<'a> {
    Obj {
        #[serde(default, borrow)]
        code: Option<Cow<'a, str>>,
    },
    Text(#[allow(dead_code)] serde::de::IgnoredAny),
}

/// Decodes one line (without its newline).
pub fn decode(line: &[u8]) -> Result<Decoded<'_>, String> {
    let l: Line<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let none = |custom_id, outcome| Decoded {
        custom_id,
        outcome,
        model: None,
        usage: TokenUsage::default(),
    };
    if let Some(r) = l.response.filter(|r| (200..300).contains(&r.status_code)) {
        let body = r.body.ok_or("a succeeded line has no `response.body`")?;
        return Ok(Decoded {
            custom_id: l.custom_id,
            outcome: LineOutcome::Succeeded,
            usage: body.usage.as_ref().map(Usage::tokens).unwrap_or_default(),
            model: body.model,
        });
    }
    let outcome = match l.error {
        Some(LineErr::Obj { code: Some(c) }) if c == LINE_EXPIRED => LineOutcome::Expired,
        Some(LineErr::Obj { code: Some(c) }) if c == LINE_CANCELLED || c == "batch_canceled" => {
            LineOutcome::Canceled
        }
        Some(_) => LineOutcome::Errored,
        // An endpoint's HTTP error, reported in `response` alone.
        None if line_has_response(line) => LineOutcome::Errored,
        None => return Err("a line with neither `response` nor `error`".into()),
    };
    Ok(none(l.custom_id, outcome))
}

/// Whether the line had a non-null `response` (already parsed once; only error lines get
/// here, which are rare).
fn line_has_response(line: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct R {
        #[serde(default)]
        response: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<R>(line).is_ok_and(|r| r.response.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::openai::wire::{ChatUsage, OutputLine, ResponsesUsage};

    #[test]
    fn succeeded_lines_bill_like_the_full_wire_types() {
        let chat = r#"{"id":"batch_req_1","custom_id":"c\u0031","response":{"status_code":200,"request_id":"req_1","body":{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-5-mini-2025-08-07","choices":[{"index":0,"message":{"role":"assistant","content":"4"}}],"usage":{"prompt_tokens":900,"completion_tokens":120,"total_tokens":1020,"prompt_tokens_details":{"cached_tokens":512},"completion_tokens_details":{"reasoning_tokens":64}}}},"error":null}"#;
        let d = decode(chat.as_bytes()).unwrap();
        let full: OutputLine = serde_json::from_str(chat).unwrap();
        let body = full.response.unwrap().body;
        let u: ChatUsage = serde_json::from_value(body["usage"].clone()).unwrap();
        assert_eq!(d.usage, TokenUsage::from_openai_chat(&u));
        assert_eq!(d.custom_id, "c1");
        assert_eq!(d.model.as_deref(), Some("gpt-5-mini-2025-08-07"));
        assert_eq!(d.outcome, LineOutcome::Succeeded);

        let resp = r#"{"custom_id":"r1","response":{"status_code":200,"body":{"status":"incomplete","model":"gpt-5","output":[],"usage":{"input_tokens":50,"input_tokens_details":{"cached_tokens":10},"output_tokens":30,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":80}}}}"#;
        let d = decode(resp.as_bytes()).unwrap();
        let v: serde_json::Value = serde_json::from_str(resp).unwrap();
        let u: ResponsesUsage =
            serde_json::from_value(v["response"]["body"]["usage"].clone()).unwrap();
        assert_eq!(d.usage, TokenUsage::from_openai_responses(&u));
        assert_eq!((d.usage.input, d.usage.cache_read, d.usage.output), (40, 10, 30));

        let emb = r#"{"custom_id":"e1","response":{"status_code":200,"body":{"object":"list","data":[{"embedding":[0.1,0.2]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}},"error":null}"#;
        let d = decode(emb.as_bytes()).unwrap();
        assert_eq!((d.usage.input, d.usage.output), (8, 0));
    }

    #[test]
    fn failures_cost_nothing_and_are_told_apart() {
        let cases = [
            (
                r#"{"id":"x","custom_id":"a","response":null,"error":{"code":"batch_expired","message":"m"}}"#,
                LineOutcome::Expired,
            ),
            (
                r#"{"id":"x","custom_id":"a","response":null,"error":{"code":"batch_cancelled","message":"m"}}"#,
                LineOutcome::Canceled,
            ),
            (
                r#"{"id":"x","custom_id":"a","response":null,"error":{"code":"request_timeout","message":"m"}}"#,
                LineOutcome::Errored,
            ),
            (
                r#"{"id":"x","custom_id":"a","response":{"status_code":400,"request_id":"r","body":{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}},"error":null}"#,
                LineOutcome::Errored,
            ),
            // vLLM: body null, error a plain string.
            (
                r#"{"id":"vllm-1","custom_id":"a","response":{"status_code":400,"body":null},"error":"bad request"}"#,
                LineOutcome::Errored,
            ),
        ];
        for (line, want) in cases {
            let d = decode(line.as_bytes()).unwrap();
            assert_eq!(d.outcome, want, "{line}");
            assert_eq!(d.usage, TokenUsage::default());
            assert_eq!(d.model, None);
        }
        assert!(decode(br#"{"custom_id":"a"}"#).is_err());
        assert!(decode(br#"{"custom_id":"a","response":{"status_code":200}}"#).is_err());
        assert!(decode(b"not json").is_err());
    }
}
