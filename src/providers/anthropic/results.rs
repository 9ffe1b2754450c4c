//! Result-line decoding for settlement: one JSONL line onto a neutral [`ResultItem`],
//! borrowing the custom id and model from the line and skipping message content without
//! building it, so a line costs no allocation (issue 17).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::providers::{LineDecoder, Outcome, ResultItem};
use crate::usage::TokenUsage;

/// The Anthropic results decoder (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lines;

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    custom_id: Cow<'a, str>,
    #[serde(borrow)]
    result: Res<'a>,
}

/// `result` read as a plain struct (not an internally tagged enum, which would buffer the
/// whole message content before looking at `type`).
#[derive(Deserialize)]
struct Res<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Option<Msg<'a>>,
}

#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    usage: LiteUsage<'a>,
    #[serde(default)]
    #[allow(dead_code)]
    content: IgnoredAny,
}

#[derive(Deserialize, Default)]
struct Cache {
    #[serde(default)]
    ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

#[derive(Deserialize, Default)]
struct Tools {
    #[serde(default)]
    web_search_requests: u64,
}

/// The billed part of `usage`, as [`TokenUsage::from_anthropic`] reads the full type.
#[derive(Deserialize)]
struct LiteUsage<'a> {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation: Option<Cache>,
    #[serde(default)]
    server_tool_use: Option<Tools>,
    #[serde(default, borrow)]
    inference_geo: Option<Cow<'a, str>>,
}

impl LiteUsage<'_> {
    fn tokens(&self) -> TokenUsage {
        let (w5, w1h) = match &self.cache_creation {
            Some(c) => (c.ephemeral_5m_input_tokens, c.ephemeral_1h_input_tokens),
            None => (self.cache_creation_input_tokens.unwrap_or(0), 0),
        };
        TokenUsage {
            input: self.input_tokens,
            output: self.output_tokens,
            cache_write_5m: w5,
            cache_write_1h: w1h,
            cache_read: self.cache_read_input_tokens.unwrap_or(0),
            web_search_requests: self.server_tool_use.as_ref().map_or(0, |s| s.web_search_requests),
            geo_us: self.inference_geo.as_deref() == Some("us"),
            prompt_tokens: None,
        }
    }
}

impl LineDecoder for Lines {
    fn decode<'l>(&self, line: &'l [u8]) -> Result<ResultItem<'l>, String> {
        let l: Line<'l> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let outcome = match l.result.kind.as_ref() {
            "succeeded" => Outcome::Succeeded,
            "errored" => Outcome::Errored,
            "canceled" => Outcome::Canceled,
            "expired" => Outcome::Expired,
            other => {
                return Err(format!(
                    "unknown variant `{other}`, expected one of `succeeded`, `errored`, \
                     `canceled`, `expired`"
                ));
            }
        };
        if outcome != Outcome::Succeeded {
            return Ok(ResultItem {
                custom_id: l.custom_id,
                outcome,
                model: None,
                usage: TokenUsage::default(),
            });
        }
        let m = l.result.message.ok_or("missing field `message`")?;
        Ok(ResultItem {
            custom_id: l.custom_id,
            outcome,
            usage: m.usage.tokens(),
            model: Some(m.model),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::anthropic::wire::ResultLine;

    #[test]
    fn decodes_like_the_full_wire_type() {
        let lines = [
            r#"{"custom_id":"row-2","result":{"type":"succeeded","message":{"id":"msg_01XYZ","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Hi."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":7,"cache_read_input_tokens":3,"output_tokens":4,"service_tier":"batch","inference_geo":"us","server_tool_use":{"web_search_requests":2}}}}}"#,
            r#"{"result":{"message":{"usage":{"output_tokens":1,"input_tokens":2,"cache_creation":{"ephemeral_1h_input_tokens":5}},"model":"m\u0031","id":"m","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null},"type":"succeeded"},"custom_id":"c\u0031"}"#,
        ];
        for l in lines {
            let item = Lines.decode(l.as_bytes()).unwrap();
            let full: ResultLine = serde_json::from_str(l).unwrap();
            let crate::providers::anthropic::wire::BatchResult::Succeeded { message } = full.result
            else {
                panic!("not succeeded");
            };
            assert_eq!(item.custom_id, full.custom_id);
            assert_eq!(item.model.as_deref(), Some(message.model.as_str()));
            assert_eq!(item.usage, TokenUsage::from_anthropic(&message.usage));
        }
        let e = Lines.decode(br#"{"custom_id":"x","result":{"type":"errored","error":{}}}"#);
        assert_eq!(e.unwrap().outcome, Outcome::Errored);
        assert!(Lines.decode(br#"{"custom_id":"x","result":{"type":"x"}}"#).is_err());
        assert!(Lines.decode(br#"{"custom_id":"x","result":{"type":"succeeded"}}"#).is_err());
    }
}
