//! Folds requests, one at a time, into per-model token sums; prices the sums at the end.
//! Memory is per model plus one hash per custom_id and per cached prefix, never per text.
//! Provider-neutral: a body front-end (providers/NAME) reduces each request of its wire
//! format to a [`Request`] and maps a [`Refusal`] onto its own field names.

use std::collections::{HashMap, HashSet};

use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::error::{Problem, RequestAt};
use super::tally::{Mark, Ttl};
use super::tokens::Tokens;
use super::{BodyFormat, Estimate, ModelEstimate};
use crate::pricing::{CostPair, PriceTable, ResolvedPrice, TokenUsage};

/// Shortest prefix the API caches (1,024 tokens on most models; some need 2,048 or 4,096).
/// Shorter marked prefixes are billed as plain input, so the expectation ignores them; the
/// worst case still prices them as writes.
const MIN_CACHEABLE: u64 = 1_024;

/// Token classes of one estimate (worst or expected).
#[derive(Clone, Copy, Default)]
struct Split {
    input: u64,
    write_5m: u64,
    write_1h: u64,
    read: u64,
}

impl Split {
    fn total(&self) -> u64 {
        self.input + self.write_5m + self.write_1h + self.read
    }

    fn add(&mut self, o: Split) {
        self.input += o.input;
        self.write_5m += o.write_5m;
        self.write_1h += o.write_1h;
        self.read += o.read;
    }
}

/// Sums of one model in one region (the US uplift prices separately).
#[derive(Clone, Copy, Default)]
struct Bucket {
    requests: u64,
    max_tokens: u64,
    web_worst: u64,
    web_expected: u64,
    worst: Split,
    expected: Split,
}

struct Slot {
    price: ResolvedPrice,
    /// Index 1: `inference_geo: "us"`.
    buckets: [Bucket; 2],
}

/// One request as the folder needs it, whatever the wire format it came in.
pub struct Request<'a> {
    pub custom_id: &'a str,
    /// The model as sent (id or alias).
    pub model: &'a str,
    pub max_tokens: u64,
    /// Priced with the US-only inference uplift.
    pub geo_us: bool,
    /// Worst-case web searches; `None` without the web search tool.
    pub web_search: Option<u64>,
    /// Input tokens of the whole request.
    pub input: Tokens,
    /// Cache breakpoints in prefix order: each prefix's size and identity.
    pub marks: &'a [Mark],
}

/// Why the folder refused a request: which of its fields, and what is wrong. The front-end
/// names the field in its own wire format.
#[derive(Debug)]
pub enum Refusal {
    CustomId(Problem),
    Model(Problem),
}

pub struct Folder<'t> {
    table: &'t PriceTable,
    at: jiff::Timestamp,
    fraction: f64,
    /// See `EstimateOptions::provider`.
    pub provider: Option<&'static str>,
    /// Model name as sent (id or alias) -> slot.
    names: HashMap<String, usize>,
    slots: Vec<Slot>,
    /// xxh3-128 of each custom_id -> index of the request that used it first.
    ids: HashMap<u128, u64>,
    fingerprint: u64,
    requests: u64,
    /// (slot, prefix hash) of every prefix some earlier request wrote to the cache.
    cached: HashSet<(usize, u64)>,
}

impl<'t> Folder<'t> {
    pub fn new(table: &'t PriceTable, at: jiff::Timestamp, fraction: f64) -> Self {
        Folder {
            table,
            at,
            fraction,
            provider: None,
            names: HashMap::new(),
            slots: Vec::new(),
            ids: HashMap::new(),
            fingerprint: 0,
            requests: 0,
            cached: HashSet::new(),
        }
    }

    /// Adds one request; `at` is where it sits in the body (for the first user of a
    /// duplicated custom_id).
    pub fn add(&mut self, at: RequestAt, req: &Request<'_>) -> Result<(), Refusal> {
        let id = req.custom_id.as_bytes();
        if let Some(&first_index) = self.ids.get(&xxh3_128(id)) {
            return Err(Refusal::CustomId(Problem::DuplicateCustomId { first_index }));
        }
        self.ids.insert(xxh3_128(id), at.index);
        self.fingerprint = self.fingerprint.wrapping_add(xxh3_64(id));
        let slot = self.slot(req.model).ok_or_else(|| {
            let model = req.model.to_string();
            Refusal::Model(match self.table.first_effective(req.model) {
                Some(from) => Problem::NotYetPriced {
                    model,
                    at: self.at.to_zoned(jiff::tz::TimeZone::UTC).date(),
                    from,
                },
                None => Problem::UnknownModel { model },
            })
        })?;
        let provider = &self.slots[slot].price.provider;
        if self.provider.is_some_and(|want| want != provider) {
            let problem =
                Problem::OtherProvider { model: req.model.to_string(), provider: provider.clone() };
            return Err(Refusal::Model(problem));
        }
        let (total, marks) = (req.input, req.marks);
        let worst = worst_split(total, marks);
        let expected = self.expected_split(slot, total, marks);
        let b = &mut self.slots[slot].buckets[usize::from(req.geo_us)];
        b.requests += 1;
        b.max_tokens += req.max_tokens;
        if let Some(n) = req.web_search {
            b.web_worst += n;
            b.web_expected += n.min(1);
        }
        b.worst.add(worst);
        b.expected.add(expected);
        self.requests += 1;
        Ok(())
    }

    fn slot(&mut self, model: &str) -> Option<usize> {
        if let Some(&s) = self.names.get(model) {
            return Some(s);
        }
        let price = self.table.resolve(model, self.at)?;
        let s = match self.slots.iter().position(|s| s.price.model == price.model) {
            Some(s) => s,
            None => {
                self.slots.push(Slot { price, buckets: [Bucket::default(); 2] });
                self.slots.len() - 1
            }
        };
        self.names.insert(model.to_string(), s);
        Some(s)
    }

    /// Reads the longest prefix an earlier request of the batch wrote, writes the rest up
    /// to the last breakpoint: one write and then hits per distinct prefix, as the docs
    /// describe for batches that share context (hits are best-effort upstream).
    fn expected_split(&mut self, slot: usize, total: Tokens, marks: &[Mark]) -> Split {
        let cacheable: Vec<(u64, &Mark)> = marks
            .iter()
            .map(|m| (m.tokens.expected(), m))
            .filter(|(n, _)| *n >= MIN_CACHEABLE)
            .collect();
        let read = cacheable
            .iter()
            .filter(|(_, m)| self.cached.contains(&(slot, m.hash)))
            .map(|(n, _)| *n)
            .max()
            .unwrap_or(0);
        for (_, m) in &cacheable {
            self.cached.insert((slot, m.hash));
        }
        let mut s = split(total.expected(), cacheable.iter().map(|(n, m)| (*n, m.ttl)), read);
        s.read = read;
        s
    }

    pub fn finish(self, format: BodyFormat) -> Estimate {
        let mut models: Vec<ModelEstimate> =
            self.slots.iter().map(|slot| model_estimate(slot, self.fraction)).collect();
        models.sort_by(|a, b| a.model.cmp(&b.model));
        Estimate {
            requests: self.requests,
            format,
            custom_id_fingerprint: self.fingerprint,
            worst: models.iter().map(|m| m.worst).sum(),
            expected: models.iter().map(|m| m.expected).sum(),
            models,
        }
    }
}

/// Worst case: everything up to the last breakpoint is written to the cache (a write
/// costs more than plain input).
fn worst_split(total: Tokens, marks: &[Mark]) -> Split {
    split(total.upper, marks.iter().map(|m| (m.tokens.upper, m.ttl)), 0)
}

/// Splits `total` input tokens given breakpoints (prefix size, TTL) and a prefix of
/// `read` tokens already cached. Everything up to the last 1-hour breakpoint is a 1-hour
/// write, the rest up to the last breakpoint a 5-minute write: the API requires 1-hour
/// breakpoints before 5-minute ones, and pricing a misordered request this way keeps the
/// worst case above any expectation (1h write >= 5m write >= input >= read).
fn split(total: u64, marks: impl Iterator<Item = (u64, Ttl)>, read: u64) -> Split {
    let (mut last_1h, mut last) = (0, 0);
    for (n, ttl) in marks {
        last = last.max(n);
        if ttl == Ttl::OneHour {
            last_1h = last_1h.max(n);
        }
    }
    let w1h = last_1h.saturating_sub(read);
    let w5m = last.saturating_sub(read.max(last_1h));
    Split { input: total.saturating_sub(read.max(last)), write_5m: w5m, write_1h: w1h, read: 0 }
}

fn model_estimate(slot: &Slot, fraction: f64) -> ModelEstimate {
    let price = &slot.price;
    let mut m = ModelEstimate {
        provider: price.provider.clone(),
        model: price.model.clone(),
        requests: 0,
        input_tokens_upper: 0,
        input_tokens_expected: 0,
        cache_write_5m_tokens_upper: 0,
        cache_write_1h_tokens_upper: 0,
        cache_write_tokens_expected: 0,
        cache_read_tokens_expected: 0,
        output_tokens_worst: 0,
        output_tokens_expected: 0,
        web_search_requests_worst: 0,
        worst: CostPair::default(),
        expected: CostPair::default(),
    };
    for (geo, b) in slot.buckets.iter().enumerate().filter(|(_, b)| b.requests > 0) {
        let output_expected = (b.max_tokens as f64 * fraction).ceil() as u64;
        let usage = |s: &Split, output, web| TokenUsage {
            input: s.input,
            output,
            cache_write_5m: s.write_5m,
            cache_write_1h: s.write_1h,
            cache_read: s.read,
            web_search_requests: web,
            geo_us: geo == 1,
            ..Default::default()
        };
        m.worst += price.cost(&usage(&b.worst, b.max_tokens, b.web_worst));
        m.expected += price.cost(&usage(&b.expected, output_expected, b.web_expected));
        m.requests += b.requests;
        m.input_tokens_upper += b.worst.total();
        m.input_tokens_expected += b.expected.total();
        m.cache_write_5m_tokens_upper += b.worst.write_5m;
        m.cache_write_1h_tokens_upper += b.worst.write_1h;
        m.cache_write_tokens_expected += b.expected.write_5m + b.expected.write_1h;
        m.cache_read_tokens_expected += b.expected.read;
        m.output_tokens_worst += b.max_tokens;
        m.output_tokens_expected += output_expected;
        m.web_search_requests_worst += b.web_worst;
    }
    m
}
