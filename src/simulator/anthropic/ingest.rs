//! Reading a create body in one streaming pass. The body flows from the socket through a
//! small channel into a blocking serde visitor that walks `requests` element by element,
//! keeps a compact [`RequestRecord`] per request and drops the rest. Nothing holds the
//! whole body, in bytes or as a `serde_json::Value`, so 100,000 requests fit in tens of MB.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::params::{Breakpoint, Invalid, Mode, summarize};
use crate::simulator::engine::body::{ChannelReader, drain};

/// 256 MB, the documented batch body limit.
pub const MAX_BODY_BYTES: u64 = 256 * 1024 * 1024;
/// Requests per batch, at most.
pub const MAX_REQUESTS: usize = 100_000;

/// What is kept of one request between create and results.
#[derive(Debug)]
pub struct RequestRecord {
    pub custom_id: Box<str>,
    pub model: Arc<str>,
    pub max_tokens: u32,
    pub input_tokens: u64,
    pub breakpoints: Box<[Breakpoint]>,
    pub web_search_max: u8,
    pub web_fetch_max: u8,
    pub inference_geo: Option<Arc<str>>,
    pub invalid: Option<Box<Invalid>>,
}

/// Reads and validates a create body; 413 past the limit, 400 naming index and field.
pub async fn read_batch(
    body: Body,
    content_length: Option<u64>,
    models: Arc<HashSet<String>>,
) -> Result<Vec<RequestRecord>, ApiError> {
    let mut stream = body.into_data_stream();
    if content_length.is_some_and(|n| n > MAX_BODY_BYTES) {
        drain(&mut stream, 0).await;
        return Err(too_large());
    }
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let parser = tokio::task::spawn_blocking(move || parse(ChannelReader::new(rx), &models));
    let mut total = 0u64;
    let mut oversized = false;
    let mut finished = false;
    loop {
        match stream.next().await {
            None => {
                finished = true;
                break;
            }
            Some(Err(_)) => break,
            Some(Ok(chunk)) => {
                total += chunk.len() as u64;
                if total > MAX_BODY_BYTES {
                    oversized = true;
                    break;
                }
                if tx.send(chunk).await.is_err() {
                    break; // the parser stopped early: it has an error to report
                }
            }
        }
    }
    drop(tx);
    let parsed = parser.await.map_err(|e| ApiError::Internal(format!("parser failed: {e}")))?;
    if !finished {
        drain(&mut stream, total).await;
    }
    if oversized {
        return Err(too_large());
    }
    parsed
}

fn too_large() -> ApiError {
    ApiError::TooLarge(format!(
        "Request exceeds the maximum allowed number of bytes: a Message Batches create body is limited to 256 MB ({MAX_BODY_BYTES} bytes)"
    ))
}

fn parse(reader: impl Read, models: &HashSet<String>) -> Result<Vec<RequestRecord>, ApiError> {
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let mut ctx = Ctx {
        models,
        records: Vec::new(),
        seen: HashMap::new(),
        interned: HashMap::new(),
        failure: None,
    };
    let outcome = TopLevel(&mut ctx).deserialize(&mut de).and_then(|()| de.end());
    match (outcome, ctx.failure.take()) {
        (_, Some(failure)) => Err(failure),
        (Err(e), None) => Err(ApiError::InvalidRequest(format!("Malformed JSON body: {e}"))),
        (Ok(()), None) => Ok(ctx.records),
    }
}

struct Ctx<'m> {
    models: &'m HashSet<String>,
    records: Vec<RequestRecord>,
    /// custom_id hash -> index of its first use; collisions are resolved by comparing.
    seen: HashMap<u64, Vec<u32>>,
    interned: HashMap<String, Arc<str>>,
    failure: Option<ApiError>,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(&mut self, message: String) -> E {
        self.failure = Some(ApiError::InvalidRequest(message));
        E::custom("invalid request")
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.interned.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.interned.insert(s.to_string(), a.clone());
        a
    }

    fn add(&mut self, custom_id: Value, params: Value) -> Result<(), String> {
        let i = self.records.len();
        let Value::String(custom_id) = custom_id else {
            return Err(format!("requests.{i}.custom_id: Input should be a valid string"));
        };
        if !valid_custom_id(&custom_id) {
            return Err(format!(
                "requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            ));
        }
        let h = xxhash_rust::xxh3::xxh3_64(custom_id.as_bytes());
        let same = self.seen.entry(h).or_default();
        if let Some(&j) = same.iter().find(|&&j| *self.records[j as usize].custom_id == *custom_id)
        {
            return Err(format!(
                "requests.{i}.custom_id: Duplicate custom_id '{custom_id}' (first used by requests.{j}); custom_id must be unique within a batch"
            ));
        }
        same.push(i as u32);
        let Value::Object(params) = params else {
            return Err(format!("requests.{i}.params: Input should be a valid dictionary"));
        };
        let s = summarize(&params, self.models, Mode::Batch);
        let model = self.intern(&s.model);
        let inference_geo = s.inference_geo.as_deref().map(|g| self.intern(g));
        self.records.push(RequestRecord {
            custom_id: custom_id.into_boxed_str(),
            model,
            max_tokens: u32::try_from(s.max_tokens).unwrap_or(u32::MAX),
            input_tokens: s.input_tokens,
            breakpoints: s.breakpoints.into_boxed_slice(),
            web_search_max: u8::try_from(s.web_search_max).unwrap_or(u8::MAX),
            web_fetch_max: u8::try_from(s.web_fetch_max).unwrap_or(u8::MAX),
            inference_geo,
            invalid: s.invalid.map(Box::new),
        });
        Ok(())
    }
}

fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The top-level object: only `requests` is allowed.
struct TopLevel<'a, 'm>(&'a mut Ctx<'m>);

impl<'de> DeserializeSeed<'de> for TopLevel<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the body to be an object with a `requests` list")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut got = false;
        while let Some(key) = map.next_key::<String>()? {
            if key != "requests" {
                return Err(self.0.fail(format!("{key}: Extra inputs are not permitted")));
            }
            if got {
                return Err(self.0.fail("requests: given twice".into()));
            }
            got = true;
            map.next_value_seed(Requests(&mut *self.0))?;
        }
        if !got {
            return Err(self.0.fail("requests: Field required".into()));
        }
        Ok(())
    }
}

/// The `requests` list, element by element.
struct Requests<'a, 'm>(&'a mut Ctx<'m>);

impl<'de> DeserializeSeed<'de> for Requests<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Requests<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`requests` to be a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let i = self.0.records.len();
            if i == MAX_REQUESTS {
                let mut n = i;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                if n > MAX_REQUESTS {
                    return Err(self.0.fail(format!(
                        "requests: List should have at most {MAX_REQUESTS} items after validation, not {n}"
                    )));
                }
                break;
            }
            if seq.next_element_seed(OneRequest(&mut *self.0, i))?.is_none() {
                break;
            }
        }
        if self.0.records.is_empty() {
            return Err(self.0.fail(
                "requests: List should have at least 1 item after validation, not 0".into(),
            ));
        }
        Ok(())
    }
}

/// One `{custom_id, params}` object; `params` is the only transient `Value`.
struct OneRequest<'a, 'm>(&'a mut Ctx<'m>, usize);

impl<'de> DeserializeSeed<'de> for OneRequest<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OneRequest<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "requests.{} to be an object with `custom_id` and `params`", self.1)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let i = self.1;
        let (mut custom_id, mut params) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "custom_id" => custom_id = Some(map.next_value::<Value>()?),
                "params" => params = Some(map.next_value::<Value>()?),
                _ => {
                    return Err(self
                        .0
                        .fail(format!("requests.{i}.{key}: Extra inputs are not permitted")));
                }
            }
        }
        let Some(custom_id) = custom_id else {
            return Err(self.0.fail(format!("requests.{i}.custom_id: Field required")));
        };
        let Some(params) = params else {
            return Err(self.0.fail(format!("requests.{i}.params: Field required")));
        };
        self.0.add(custom_id, params).map_err(|m| self.0.fail(m))
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
