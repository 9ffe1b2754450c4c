//! The estimator's front-end for OpenAI batch input files: validates and prices a JSONL
//! file while it streams in, one chunk at a time, keeping only the partial last line, a
//! hash per `custom_id` and a handful of sums (one model per file, so one price).
//!
//! Rules (reference batch-apis 2.4, providers-next 2.1-2.2): every line an object with a
//! unique `custom_id`, `method` `POST`, the same `url` on every line (one of
//! [`ENDPOINTS`]), a `body` object naming one `model` for the whole file, priced for this
//! upstream; at most [`Limits::max_lines`] lines and [`Limits::max_bytes`] bytes. A bad
//! line is refused with its 1-based line number and the field.
//!
//! Worst case per request: input as the upper token bound of every string in `body` (the
//! same bound the Anthropic front-end uses: byte-level BPE never makes more tokens than
//! bytes), plus framing per object and a fixed bound per image; output as the cap
//! (`max_completion_tokens` or `max_tokens` for chat, `max_output_tokens` for Responses,
//! `max_tokens` for legacy completions) times `n` / `best_of`, or the model's
//! `max_output_tokens` from the price table when the line has no cap. Embeddings and
//! moderations produce no output tokens.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::wire::{ENDPOINTS, MAX_BATCH_FILE_BYTES, MAX_LINES};
use crate::estimate::{BodyFormat, Estimate, ModelEstimate, Tokens};
use crate::pricing::{PriceTable, ResolvedPrice};
use crate::usage::TokenUsage;

/// Input tokens one image can cost at most: gpt-4o-mini's high-detail pricing of a
/// 2048x768 image (2,833 base + 6 tiles x 5,667) is the largest the pricing pages give.
pub const IMAGE_TOKENS_UPPER: u64 = 37_000;
/// Typical tokens of an image (low/auto detail on current models).
const IMAGE_TOKENS_EXPECTED: u64 = 1_000;
/// Framing per JSON object (message, content part): role markers and separators.
const OBJECT_OVERHEAD: Tokens = Tokens::fixed(4, 3);
/// Framing per request (start of prompt, reply priming).
const REQUEST_OVERHEAD: Tokens = Tokens::fixed(8, 3);
/// Largest output cap accepted (above any model's maximum; keeps sums far from overflow).
const MAX_CAP: u64 = 10_000_000;

/// Size limits of one batch input file (OpenAI's by default; compatible upstreams differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_lines: u64,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_lines: MAX_LINES as u64, max_bytes: MAX_BATCH_FILE_BYTES }
    }
}

/// Why a file was refused. `Display` is the client-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("line {line}: {field}: {problem}")]
    Line { line: u64, field: &'static str, problem: String },
    #[error("line {line}: malformed JSON: {reason}")]
    Syntax { line: u64, reason: String },
    #[error("file: a batch input file holds at most {max} requests (line {line} is one more)")]
    TooManyLines { max: u64, line: u64 },
    #[error("file: a batch input file is at most {max} bytes")]
    TooLarge { max: u64 },
    #[error("file: no requests (a batch input file has one JSON object per line)")]
    Empty,
}

impl FileError {
    /// The request field at fault, for the envelope's `param`.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            FileError::Line { field, .. } => Some(field),
            _ => Some("file"),
        }
    }
}

/// What is kept with an uploaded file: enough to price it at batch create with the
/// prices in force then, and to recognise its results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSummary {
    /// The price table's provider (the upstream's name).
    pub provider: String,
    /// Canonical id in the price table.
    pub model: String,
    /// The model as the lines name it.
    pub model_sent: String,
    /// The `url` of every line: the batch's `endpoint`.
    pub endpoint: String,
    pub requests: u64,
    pub bytes: u64,
    /// Wrapping sum of `xxh3_64(custom_id)`, as the core fingerprints results.
    pub custom_id_fingerprint: u64,
    pub input_tokens_upper: u64,
    pub input_tokens_expected: u64,
    pub output_tokens_worst: u64,
    /// Largest single request's input bound (selects a long-context tier).
    pub max_prompt_upper: u64,
}

impl FileSummary {
    /// The estimate at `price` (the entry in force at batch create).
    pub fn estimate(&self, price: &ResolvedPrice, expected_output_fraction: f64) -> Estimate {
        let output_expected =
            (self.output_tokens_worst as f64 * expected_output_fraction).ceil() as u64;
        let worst_usage = TokenUsage {
            input: self.input_tokens_upper,
            output: self.output_tokens_worst,
            ..Default::default()
        };
        let expected_usage = TokenUsage {
            input: self.input_tokens_expected,
            output: output_expected,
            ..Default::default()
        };
        let worst = price.cost_for_prompt(&worst_usage, self.max_prompt_upper);
        let expected = price.cost_for_prompt(&expected_usage, self.max_prompt_upper);
        let m = ModelEstimate {
            provider: price.provider.clone(),
            model: price.model.clone(),
            requests: self.requests,
            input_tokens_upper: self.input_tokens_upper,
            input_tokens_expected: self.input_tokens_expected,
            cache_write_5m_tokens_upper: 0,
            cache_write_1h_tokens_upper: 0,
            cache_write_tokens_expected: 0,
            cache_read_tokens_expected: 0,
            output_tokens_worst: self.output_tokens_worst,
            output_tokens_expected: output_expected,
            web_search_requests_worst: 0,
            worst,
            expected,
        };
        Estimate {
            requests: self.requests,
            format: BodyFormat::Jsonl,
            custom_id_fingerprint: self.custom_id_fingerprint,
            worst,
            expected,
            models: vec![m],
        }
    }
}

/// The streaming checker: [`Checker::push`] each chunk as it arrives, then
/// [`Checker::finish`].
pub struct Checker<'t> {
    table: &'t PriceTable,
    provider: String,
    at: jiff::Timestamp,
    limits: Limits,
    partial: Vec<u8>,
    line: u64,
    bytes: u64,
    requests: u64,
    ids: HashMap<u128, u64>,
    fingerprint: u64,
    endpoint: Option<String>,
    model: Option<(String, ResolvedPrice)>,
    input_upper: u64,
    input_milli: u64,
    output_worst: u64,
    max_prompt: u64,
}

impl<'t> Checker<'t> {
    /// Prices against `provider`'s rows in force at `at`.
    pub fn new(table: &'t PriceTable, provider: &str, at: jiff::Timestamp, limits: Limits) -> Self {
        Checker {
            table,
            provider: provider.to_string(),
            at,
            limits,
            partial: Vec::new(),
            line: 0,
            bytes: 0,
            requests: 0,
            ids: HashMap::new(),
            fingerprint: 0,
            endpoint: None,
            model: None,
            input_upper: 0,
            input_milli: 0,
            output_worst: 0,
            max_prompt: 0,
        }
    }

    /// Bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Checks every complete line in `chunk`; keeps the cut-off rest for the next chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), FileError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limits.max_bytes {
            return Err(FileError::TooLarge { max: self.limits.max_bytes });
        }
        let mut rest = chunk;
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(pos) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&rest[..pos]);
                    self.line(&line)?;
                    line.clear();
                    self.partial = line;
                    rest = &rest[pos + 1..];
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    return Ok(());
                }
            }
        }
        let mut start = 0;
        for pos in memchr::memchr_iter(b'\n', rest) {
            self.line(&rest[start..pos])?;
            start = pos + 1;
        }
        self.partial.extend_from_slice(&rest[start..]);
        Ok(())
    }

    /// Checks the last line and sums up.
    pub fn finish(mut self) -> Result<FileSummary, FileError> {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.line(&last)?;
        }
        let (Some(endpoint), Some((model_sent, price))) = (self.endpoint, self.model) else {
            return Err(FileError::Empty);
        };
        Ok(FileSummary {
            provider: self.provider,
            model: price.model,
            model_sent,
            endpoint,
            requests: self.requests,
            bytes: self.bytes,
            custom_id_fingerprint: self.fingerprint,
            input_tokens_upper: self.input_upper,
            input_tokens_expected: self.input_milli.div_ceil(1000),
            output_tokens_worst: self.output_worst,
            max_prompt_upper: self.max_prompt,
        })
    }

    fn line(&mut self, raw: &[u8]) -> Result<(), FileError> {
        self.line += 1;
        let n = self.line;
        let raw = if n == 1 { raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw) } else { raw };
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        if self.requests >= self.limits.max_lines {
            return Err(FileError::TooManyLines { max: self.limits.max_lines, line: n });
        }
        let fail = |field, problem: String| FileError::Line { line: n, field, problem };
        let l: LineIn<'_> = serde_json::from_slice(raw)
            .map_err(|e| FileError::Syntax { line: n, reason: e.to_string() })?;
        let custom_id = required_str(l.custom_id, "custom_id", n)?;
        if custom_id.is_empty() || custom_id.chars().count() > 512 {
            return Err(fail("custom_id", "must be 1 to 512 characters".into()));
        }
        let method = required_str(l.method, "method", n)?;
        if method != "POST" {
            return Err(fail("method", format!("must be \"POST\", got {}", quote(&method))));
        }
        let url = required_str(l.url, "url", n)?;
        match &self.endpoint {
            Some(e) if *e != url => {
                return Err(fail(
                    "url",
                    format!(
                        "must be {} like every line before it (one endpoint per file), got {}",
                        quote(e),
                        quote(&url)
                    ),
                ));
            }
            Some(_) => {}
            None if ENDPOINTS.contains(&url.as_ref()) => self.endpoint = Some(url.to_string()),
            None => {
                return Err(fail(
                    "url",
                    format!("must be one of {}, got {}", ENDPOINTS.join(", "), quote(&url)),
                ));
            }
        }
        let mut body = match l.body {
            Some(b) if b.object => b,
            Some(_) => return Err(fail("body", "must be an object".into())),
            None => return Err(fail("body", "is required".into())),
        };
        let model = required_str(body.model.take(), "body.model", n)?;
        let price = match &self.model {
            Some((sent, p)) if *sent == model => p,
            Some((sent, _)) => {
                return Err(fail(
                    "body.model",
                    format!(
                        "must be {} like every line before it (one model per file), got {}",
                        quote(sent),
                        quote(&model)
                    ),
                ));
            }
            None => {
                let p =
                    self.table.resolve_for(&self.provider, &model, self.at).ok_or_else(|| {
                        fail(
                            "body.model",
                            format!(
                                "model {} is not in the price table for provider {}",
                                quote(&model),
                                self.provider
                            ),
                        )
                    })?;
                &self.model.insert((model.to_string(), p)).1
            }
        };
        let output = output_bound(&url, &body, price).map_err(|(field, p)| fail(field, p))?;
        if let Some(Field::Bool(true)) = body.stream {
            return Err(fail(
                "body.stream",
                "must be false or absent: a batch cannot stream".into(),
            ));
        }
        let id = xxh3_128(custom_id.as_bytes());
        if let Some(first) = self.ids.insert(id, n) {
            return Err(fail("custom_id", format!("duplicates the custom_id of line {first}")));
        }
        self.fingerprint = self.fingerprint.wrapping_add(xxh3_64(custom_id.as_bytes()));
        let input = body.tokens + REQUEST_OVERHEAD;
        self.requests += 1;
        self.input_upper += input.upper;
        self.input_milli += input.milli;
        self.max_prompt = self.max_prompt.max(input.upper);
        self.output_worst += output;
        Ok(())
    }
}

/// The worst-case output of one request, or the field at fault.
fn output_bound(
    url: &str,
    body: &BodyScan<'_>,
    price: &ResolvedPrice,
) -> Result<u64, (&'static str, String)> {
    let (cap, field) = match url {
        "/v1/chat/completions" => match &body.max_completion_tokens {
            Some(f) => (Some(f), "body.max_completion_tokens"),
            None => (body.max_tokens.as_ref(), "body.max_tokens"),
        },
        "/v1/responses" => (body.max_output_tokens.as_ref(), "body.max_output_tokens"),
        "/v1/completions" => (body.max_tokens.as_ref(), "body.max_tokens"),
        _ => return Ok(0),
    };
    if price.embeddings {
        return Ok(0);
    }
    let cap = match cap {
        Some(f) => positive(f, MAX_CAP).map_err(|p| (field, p))?,
        None => price.max_output_tokens.ok_or_else(|| {
            (
                field,
                format!(
                    "is required: model {} has no max_output_tokens in the price table to bound it",
                    quote(&price.model)
                ),
            )
        })?,
    };
    let mut times = 1;
    for (f, name) in [(&body.n, "body.n"), (&body.best_of, "body.best_of")] {
        if let Some(f) = f {
            times = times.max(positive(f, 128).map_err(|p| (name, p))?);
        }
    }
    Ok(cap * times)
}

fn positive(f: &Field<'_>, max: u64) -> Result<u64, String> {
    match f {
        Field::Num(v) if (1..=max).contains(v) => Ok(*v),
        other => Err(format!("must be an integer from 1 to {max}, got {}", other.show())),
    }
}

fn required_str<'a>(
    f: Option<Field<'a>>,
    field: &'static str,
    line: u64,
) -> Result<Cow<'a, str>, FileError> {
    match f {
        Some(Field::Str(s)) => Ok(s),
        None | Some(Field::Null) => {
            Err(FileError::Line { line, field, problem: "is required".into() })
        }
        Some(other) => Err(FileError::Line {
            line,
            field,
            problem: format!("must be a string, got {}", other.show()),
        }),
    }
}

fn quote(s: &str) -> String {
    let cut: String = s.chars().take(60).collect();
    let more = if cut.len() < s.len() { "..." } else { "" };
    format!("{:?}", format!("{cut}{more}"))
}

/// One line's top level; other keys are ignored (the upstream decides about them).
#[derive(Deserialize)]
struct LineIn<'a> {
    #[serde(default, borrow)]
    custom_id: Option<Field<'a>>,
    #[serde(default, borrow)]
    method: Option<Field<'a>>,
    #[serde(default, borrow)]
    url: Option<Field<'a>>,
    #[serde(default, borrow)]
    body: Option<BodyScan<'a>>,
}

/// A JSON value that keeps what a message needs to say what it got.
enum Field<'a> {
    Str(Cow<'a, str>),
    Num(u64),
    Bool(bool),
    Null,
    Other(&'static str),
}

impl Field<'_> {
    fn show(&self) -> String {
        match self {
            Field::Str(s) => quote(s),
            Field::Num(n) => n.to_string(),
            Field::Bool(b) => b.to_string(),
            Field::Null => "null".into(),
            Field::Other(what) => (*what).into(),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Field<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Field<'a>, E> {
                Ok(Field::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Field<'a>, E> {
                Ok(Field::Str(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Field<'a>, E> {
                Ok(Field::Str(Cow::Owned(s)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Field<'a>, E> {
                Ok(Field::Num(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Field<'a>, E> {
                Ok(if v >= 0 { Field::Num(v as u64) } else { Field::Other("a negative number") })
            }
            fn visit_f64<E>(self, _: f64) -> Result<Field<'a>, E> {
                Ok(Field::Other("a fractional number"))
            }
            fn visit_bool<E>(self, b: bool) -> Result<Field<'a>, E> {
                Ok(Field::Bool(b))
            }
            fn visit_unit<E>(self) -> Result<Field<'a>, E> {
                Ok(Field::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Field<'a>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Field<'a>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other("an object"))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// `body`: the fields pricing reads, and the token bound of everything else it sends.
#[derive(Default)]
struct BodyScan<'a> {
    object: bool,
    model: Option<Field<'a>>,
    max_tokens: Option<Field<'a>>,
    max_completion_tokens: Option<Field<'a>>,
    max_output_tokens: Option<Field<'a>>,
    n: Option<Field<'a>>,
    best_of: Option<Field<'a>>,
    stream: Option<Field<'a>>,
    tokens: Tokens,
}

impl<'de: 'a, 'a> Deserialize<'de> for BodyScan<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = BodyScan<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a request body")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<BodyScan<'a>, A::Error> {
                let mut b = BodyScan { object: true, ..Default::default() };
                while let Some(key) = a.next_key::<Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "model" => &mut b.model,
                        "max_tokens" => &mut b.max_tokens,
                        "max_completion_tokens" => &mut b.max_completion_tokens,
                        "max_output_tokens" => &mut b.max_output_tokens,
                        "n" => &mut b.n,
                        "best_of" => &mut b.best_of,
                        "stream" => &mut b.stream,
                        _ => {
                            b.tokens += a.next_value::<Count>()?.0;
                            continue;
                        }
                    };
                    *slot = Some(a.next_value()?);
                }
                Ok(b)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<BodyScan<'a>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(BodyScan::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<BodyScan<'a>, E> {
                Ok(BodyScan::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<BodyScan<'a>, E> {
                Ok(BodyScan::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<BodyScan<'a>, E> {
                Ok(BodyScan::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<BodyScan<'a>, E> {
                Ok(BodyScan::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<BodyScan<'a>, E> {
                Ok(BodyScan::default())
            }
            fn visit_unit<E>(self) -> Result<BodyScan<'a>, E> {
                Ok(BodyScan::default())
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The token bound of any JSON value the model reads: strings as text, integers (token
/// id arrays) as one token each, object keys (tool and schema property names) in the
/// upper bound, framing per object, and images by [`IMAGE_TOKENS_UPPER`].
struct Count(Tokens);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, s: &str) -> Result<Count, E> {
                Ok(Count(Tokens::of_text(s)))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Count, E> {
                Ok(Count(Tokens::fixed(1, 1)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Count, E> {
                Ok(Count(Tokens::fixed(1, 1)))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                Ok(Count(Tokens::default()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(Tokens::default()))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(Tokens::default()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Count, A::Error> {
                let mut t = Tokens::default();
                while let Some(c) = a.next_element::<Count>()? {
                    t += c.0;
                }
                Ok(Count(t))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Count, A::Error> {
                let mut t = OBJECT_OVERHEAD;
                while let Some(key) = a.next_key::<Cow<'de, str>>()? {
                    if key == "image_url" {
                        a.next_value::<IgnoredAny>()?;
                        t += Tokens::fixed(IMAGE_TOKENS_UPPER, IMAGE_TOKENS_EXPECTED);
                        continue;
                    }
                    t.upper += key.len() as u64;
                    t += a.next_value::<Count>()?.0;
                }
                Ok(Count(t))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
#[path = "batchfile_tests.rs"]
mod tests;
