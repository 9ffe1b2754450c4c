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

use futures_util::StreamExt;

use super::usage::from_gemini;
use super::wire::{Operation, UsageMetadata};
use crate::providers::{LineDecoder, Outcome, ResultItem, ResultStream};

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
    error: Option<Err<'a>>,
}

/// An error line's status: only the code and our own marker are read.
#[derive(Deserialize)]
struct Err<'a> {
    #[serde(default)]
    code: i64,
    #[serde(default, borrow)]
    message: Cow<'a, str>,
    #[serde(default)]
    #[allow(dead_code)]
    details: IgnoredAny,
}

/// google.rpc code CANCELLED.
const CANCELLED: i64 = 1;
/// The message of the lines [`pad`] writes for requests an expired batch never ran.
const EXPIRED_MESSAGE: &str = "batchcost: the batch expired before this request ran";

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
            (None, Some(e)) => Ok(ResultItem {
                custom_id,
                outcome: match e.code {
                    CANCELLED => Outcome::Canceled,
                    _ if e.message == EXPIRED_MESSAGE => Outcome::Expired,
                    _ => Outcome::Errored,
                },
                model: None,
                usage: Default::default(),
            }),
            (None, None) => Err("result line has neither `response` nor `error`".into()),
        }
    }
}

/// The results stream, completed with one line per request the batch never answered (a
/// cancelled, expired or failed batch may return fewer lines than it had requests, or no
/// output at all: whether it does is UNCONFIRMED), so settlement always sees the whole batch.
/// Unanswered requests of a cancelled batch count as canceled, of an expired one as
/// expired, otherwise as errored; they cost nothing.
pub fn pad(inner: ResultStream, total: u64, state: &str) -> ResultStream {
    let (code, message) = match state.rsplit('_').next() {
        Some("CANCELLED") => {
            (CANCELLED, "batchcost: the batch was cancelled before this request ran")
        }
        Some("EXPIRED") => (4, EXPIRED_MESSAGE),
        _ => (13, "batchcost: the batch ended without a result for this request"),
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new((0u64, b'\n')));
    let counter = seen.clone();
    let counted = inner.map(move |chunk| {
        if let Ok(c) = &chunk {
            let mut s = counter.lock().unwrap_or_else(|e| e.into_inner());
            s.0 += memchr::memchr_iter(b'\n', c).count() as u64;
            if let Some(last) = c.last() {
                s.1 = *last;
            }
        }
        chunk
    });
    let tail = futures_util::stream::once(async move {
        let (lines, last) = *seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = BytesMut::new();
        let mut lines = lines;
        if last != b'\n' {
            buf.put_u8(b'\n');
            lines += 1;
        }
        let line = serde_json::json!({"key": "", "error": {"code": code, "message": message}});
        let text = line.to_string();
        for _ in lines..total {
            buf.extend_from_slice(text.as_bytes());
            buf.put_u8(b'\n');
        }
        Ok(buf.freeze())
    });
    counted.chain(tail).boxed()
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

    #[tokio::test]
    async fn a_short_results_stream_is_padded_to_the_request_count() {
        let inner: ResultStream = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"{\"key\":\"a\",\"response\":{}}\n{\"key\":\"b\",")),
            Ok(Bytes::from_static(b"\"response\":{}}")),
        ])
        .boxed();
        let all: Vec<Bytes> =
            pad(inner, 4, "BATCH_STATE_CANCELLED").map(|c| c.unwrap()).collect().await;
        let text: Vec<u8> = all.concat();
        let lines: Vec<_> = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 4);
        let outcomes: Vec<_> = lines.iter().map(|l| Lines.decode(l).unwrap().outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Succeeded, Outcome::Succeeded, Outcome::Canceled, Outcome::Canceled]
        );
        let expired = pad(futures_util::stream::empty().boxed(), 1, "JOB_STATE_EXPIRED");
        let text: Vec<Bytes> = expired.map(|c| c.unwrap()).collect().await;
        assert_eq!(Lines.decode(text.concat().trim_ascii()).unwrap().outcome, Outcome::Expired);
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
