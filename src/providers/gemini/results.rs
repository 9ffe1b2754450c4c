//! Result lines for settlement. File mode: `{"key", "response": GenerateContentResponse}`
//! or `{"key", "error": Status}`; inline mode: the batch object's `inlinedResponses`
//! re-emitted as the same lines (key = `metadata.key`, else the request's index), so one
//! decoder serves both. A `response` counts as succeeded and is billed from its
//! `usageMetadata`, a blocked prompt included (billing of blocked prompts is UNCONFIRMED:
//! billing what the usage says is the safe side). Lines carry no model: a Gemini batch
//! has exactly one, the one in its create path, which settlement takes from the hold.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::usage::from_gemini;
use super::wire::{Operation, UsageMetadata};
use crate::providers::{LineDecoder, Outcome, ResultItem};

/// The Gemini results decoder (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lines;

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default, borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(default)]
    response: Option<Resp>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resp {
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
}

impl LineDecoder for Lines {
    fn decode<'l>(&self, line: &'l [u8]) -> Result<ResultItem<'l>, String> {
        let l: Line<'l> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let custom_id = l.key.unwrap_or(Cow::Borrowed(""));
        match (l.response, l.error) {
            (Some(r), _) => Ok(ResultItem {
                custom_id,
                outcome: Outcome::Succeeded,
                model: None,
                usage: r.usage_metadata.as_ref().map(from_gemini).unwrap_or_default(),
            }),
            (None, Some(_)) => Ok(ResultItem {
                custom_id,
                outcome: Outcome::Errored,
                model: None,
                usage: Default::default(),
            }),
            (None, None) => Err("result line has neither `response` nor `error`".into()),
        }
    }
}

/// The inline results of a finished batch object as JSONL, in request order. Reads
/// `metadata.output`, else the operation's `response` (the wire duplicates them).
pub fn inline_lines(op: &Operation) -> Bytes {
    let out = op.metadata.output.as_ref().or(op.response.as_ref());
    let items = out.and_then(|o| o.inlined_responses.as_ref());
    let mut buf = BytesMut::new();
    for (i, r) in items.map(|x| x.inlined_responses.as_slice()).unwrap_or(&[]).iter().enumerate() {
        let key = r
            .metadata
            .as_ref()
            .and_then(|m| m.get("key").cloned())
            .unwrap_or_else(|| i.to_string());
        let line = match (&r.response, &r.error) {
            (Some(resp), _) => serde_json::json!({"key": key, "response": resp}),
            (None, Some(e)) => serde_json::json!({"key": key, "error": e}),
            (None, None) => {
                serde_json::json!({"key": key, "error": {"code": 13, "message": "no response"}})
            }
        };
        if serde_json::to_writer((&mut buf).writer(), &line).is_ok() {
            buf.put_u8(b'\n');
        }
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_error_lines_decode() {
        let ok = br#"{"key":"request_1","response":{"modelVersion":"gemini-2.5-flash","candidates":[{"content":{"parts":[{"text":"hi"}]}}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":11,"thoughtsTokenCount":829,"totalTokenCount":848}}}"#;
        let item = Lines.decode(ok).unwrap();
        assert_eq!(item.custom_id, "request_1");
        assert_eq!(item.outcome, Outcome::Succeeded);
        assert_eq!((item.usage.input, item.usage.output), (8, 840));
        let err = br#"{"key":"r2","error":{"code":3,"message":"bad"}}"#;
        let item = Lines.decode(err).unwrap();
        assert_eq!((item.outcome, item.usage.output), (Outcome::Errored, 0));
        assert!(Lines.decode(br#"{"key":"r3"}"#).is_err());
    }

    #[test]
    fn inline_responses_become_lines_keyed_by_metadata_or_index() {
        let op: Operation = serde_json::from_str(r#"{"name":"batches/x","done":true,
          "metadata":{"state":"BATCH_STATE_SUCCEEDED","output":{"inlinedResponses":{"inlinedResponses":[
            {"response":{"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2}},"metadata":{"key":"a"}},
            {"error":{"code":3,"message":"no"}}]}}}}"#).unwrap();
        let text = inline_lines(&op);
        let lines: Vec<_> = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 2);
        let a = Lines.decode(lines[0]).unwrap();
        assert_eq!((a.custom_id.as_ref(), a.usage.output), ("a", 2));
        let b = Lines.decode(lines[1]).unwrap();
        assert_eq!((b.custom_id.as_ref(), b.outcome), ("1", Outcome::Errored));
    }
}
