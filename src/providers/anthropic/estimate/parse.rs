//! The streaming walk over a batch body: serde visitors over the `requests` array (or one
//! line at a time for JSONL) that hand each request, borrowed from the body, to a sink and
//! forget it. Nothing here builds a `serde_json::Value` or keeps a request.
//!
//! Visitors report their own problems through [`Ctx`] (serde errors only carry strings),
//! so the caller gets a typed [`EstimateError`] naming the request and field.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

pub use super::ctx::Ctx;
use super::prompt::{Params, ParamsSeed};
use super::scalar::{Path, Scalar, next_str, reject_scalars};
use crate::estimate::{BodyFormat, EstimateError, MAX_REQUESTS, Problem, RequestAt};

/// One request, borrowed from the body for the time of the sink call.
pub struct Request<'a> {
    pub custom_id: Cow<'a, str>,
    pub params: Params<'a>,
}

/// Receives each request in body order.
pub type Sink<'s> = dyn for<'a> FnMut(RequestAt, Request<'a>) -> Result<(), EstimateError> + 's;

/// Walks a body of either format; returns the format.
pub fn walk(body: &[u8], sink: &mut Sink<'_>) -> Result<BodyFormat, EstimateError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match detect(body) {
        BodyFormat::Json => walk_json(body, sink).map(|()| BodyFormat::Json),
        BodyFormat::Jsonl => walk_jsonl(body, sink).map(|()| BodyFormat::Jsonl),
    }
}

/// JSONL when the first key of the first object is a request's key; a JSON body's first
/// key is `requests`, and anything else is judged (and refused) as a JSON body.
fn detect(body: &[u8]) -> BodyFormat {
    let rest = body.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b"{") else { return BodyFormat::Json };
    let rest = rest.trim_ascii_start();
    if rest.starts_with(b"\"custom_id\"") || rest.starts_with(b"\"params\"") {
        BodyFormat::Jsonl
    } else {
        BodyFormat::Json
    }
}

fn walk_json(body: &[u8], sink: &mut Sink<'_>) -> Result<(), EstimateError> {
    if body.trim_ascii().is_empty() {
        return Err(EstimateError::Shape("body is empty".into()));
    }
    let ctx = Ctx::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let res = BodySeed { ctx: &ctx, sink }.deserialize(&mut de).and_then(|()| de.end());
    res.map_err(|e| ctx.error(e, 0))
}

fn walk_jsonl(body: &[u8], sink: &mut Sink<'_>) -> Result<(), EstimateError> {
    let mut index = 0u64;
    let (mut rest, mut line_no) = (body, 0u64);
    while !rest.is_empty() {
        let end = find_newline(rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        line_no += 1;
        if line.trim_ascii().is_empty() {
            continue;
        }
        if index == MAX_REQUESTS {
            return Err(EstimateError::Count { got: format!("more than {MAX_REQUESTS}") });
        }
        let ctx = Ctx::new(Some(line_no));
        ctx.at.set(RequestAt { index, line: Some(line_no) });
        let mut de = serde_json::Deserializer::from_slice(line);
        let req = RequestSeed { ctx: &ctx }.deserialize(&mut de).and_then(|r| de.end().map(|()| r));
        let req = req.map_err(|e| ctx.error(e, line_no - 1))?;
        sink(ctx.at.get(), req)?;
        index += 1;
    }
    if index == 0 {
        return Err(EstimateError::Count { got: "0".into() });
    }
    Ok(())
}

/// Position of the first `\n`, eight bytes at a time (lines are kilobytes long, and a
/// byte-by-byte split was a third of the JSONL walk).
fn find_newline(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&s[i..i + 8]);
        let x = u64::from_le_bytes(word) ^ (LO * u64::from(b'\n'));
        if (x.wrapping_sub(LO) & !x & HI) != 0 {
            break;
        }
        i += 8;
    }
    s[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

/// The top-level object of a JSON body.
struct BodySeed<'c, 's, 'k> {
    ctx: &'c Ctx,
    sink: &'s mut Sink<'k>,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl BodySeed<'_, '_, '_> {
    fn wrong<E: de::Error>(self, got: Scalar) -> Result<(), E> {
        let got = super::scalar::show(&got);
        Err(self.ctx.raise(EstimateError::Shape(format!(
            "body: must be a JSON object with a `requests` array (or JSONL), got {got}"
        ))))
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a batch body")
    }
    reject_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.wrong(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key != "requests" {
                return Err(self.ctx.raise(EstimateError::Shape(format!(
                    "body.{key}: unknown field, a batch body has only `requests`"
                ))));
            }
            map.next_value_seed(RequestsSeed { ctx: self.ctx, sink: &mut *self.sink })?;
            seen = true;
        }
        if !seen {
            return Err(self.ctx.raise(EstimateError::Shape("body.requests: is required".into())));
        }
        Ok(())
    }
}

/// The `requests` array: each element is handed to the sink as soon as it is parsed.
struct RequestsSeed<'c, 's, 'k> {
    ctx: &'c Ctx,
    sink: &'s mut Sink<'k>,
}

impl<'de> DeserializeSeed<'de> for RequestsSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl RequestsSeed<'_, '_, '_> {
    fn wrong<E: de::Error>(self, got: Scalar) -> Result<(), E> {
        let got = super::scalar::show(&got);
        Err(self
            .ctx
            .raise(EstimateError::Shape(format!("body.requests: must be an array, got {got}"))))
    }
}

impl<'de> Visitor<'de> for RequestsSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of requests")
    }
    reject_scalars!();
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.wrong(Scalar::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0u64;
        loop {
            self.ctx.at.set(RequestAt { index, line: None });
            self.ctx.in_request.set(true);
            let Some(req) = seq.next_element_seed(RequestSeed { ctx: self.ctx })? else { break };
            self.ctx.in_request.set(false);
            if index == MAX_REQUESTS {
                let got = format!("more than {MAX_REQUESTS}");
                return Err(self.ctx.raise(EstimateError::Count { got }));
            }
            (self.sink)(self.ctx.at.get(), req).map_err(|e| self.ctx.raise(e))?;
            index += 1;
        }
        self.ctx.in_request.set(false);
        if index == 0 {
            return Err(self.ctx.raise(EstimateError::Count { got: "0".into() }));
        }
        Ok(())
    }
}

/// One `{"custom_id", "params"}` object.
pub(super) struct RequestSeed<'c> {
    pub ctx: &'c Ctx,
}

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = Request<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Request<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl RequestSeed<'_> {
    fn wrong<'de, E: de::Error>(self, got: Scalar) -> Result<Request<'de>, E> {
        let got = super::scalar::show(&got);
        let problem = Problem::WrongType { expected: "an object with custom_id and params", got };
        Err(self.ctx.raise(EstimateError::Request {
            at: self.ctx.at.get(),
            field: String::new(),
            problem,
        }))
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = Request<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a request object")
    }
    reject_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Request<'de>, A::Error> {
        self.wrong(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request<'de>, A::Error> {
        let root = Path::Root;
        let (mut custom_id, mut params) = (None, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "custom_id" => {
                    let path = root.key("custom_id");
                    let s = next_str(&mut map, self.ctx, &path)?;
                    if !valid_custom_id(&s) {
                        let got = super::scalar::show(&Scalar::Str(s));
                        return Err(self.ctx.fail(&path, Problem::CustomIdFormat { got }));
                    }
                    custom_id = Some(s);
                }
                "params" => {
                    let path = root.key("params");
                    params = Some(map.next_value_seed(ParamsSeed { ctx: self.ctx, path: &path })?);
                }
                other => return Err(self.ctx.fail(&root.key(other), Problem::UnknownField)),
            }
        }
        let custom_id =
            custom_id.ok_or_else(|| self.ctx.fail(&root.key("custom_id"), Problem::Missing))?;
        let params = params.ok_or_else(|| self.ctx.fail(&root.key("params"), Problem::Missing))?;
        Ok(Request { custom_id, params })
    }
}

/// `^[a-zA-Z0-9_-]{1,64}$` (reference 1.3).
pub fn valid_custom_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses a lone `params` object (for [`super::request_input_upper_bound`]).
pub fn parse_params(json: &[u8]) -> Result<Params<'_>, EstimateError> {
    let ctx = Ctx::new(None);
    ctx.in_request.set(true);
    let mut de = serde_json::Deserializer::from_slice(json);
    let root = Path::Root;
    let path = root.key("params");
    let res = ParamsSeed { ctx: &ctx, path: &path }
        .deserialize(&mut de)
        .and_then(|p| de.end().map(|()| p));
    res.map_err(|e| ctx.error(e, 0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn find_newline_agrees_with_a_byte_scan() {
        for len in 0..40 {
            for at in 0..=len {
                let mut s = vec![b'x'; len];
                if at < len {
                    s[at] = b'\n';
                }
                let naive = s.iter().position(|&b| b == b'\n');
                assert_eq!(super::find_newline(&s), naive, "len {len} at {at}");
            }
        }
        // Bytes that differ from '\n' by one bit or carry must not match.
        assert_eq!(super::find_newline(&[0x0B, 0x8A, 0x09, 0x0A]), Some(3));
    }
}
