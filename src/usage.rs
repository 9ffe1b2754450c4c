//! Neutral token classes shared by pricing, the ledger, metrics and reports. Every
//! provider maps its own usage object onto [`TokenUsage`] in its module under
//! `providers/`; nothing here knows a wire format.

use std::ops::{Add, AddAssign};

/// The token classes that are priced separately; `as_str` values are the `kind` metric
/// label of `batchcost_tokens_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenKind {
    Input,
    Output,
    CacheWrite5m,
    CacheWrite1h,
    CacheRead,
}

impl TokenKind {
    /// Every kind, in the order metrics and reports list them.
    pub const ALL: [TokenKind; 5] = [
        TokenKind::Input,
        TokenKind::Output,
        TokenKind::CacheWrite5m,
        TokenKind::CacheWrite1h,
        TokenKind::CacheRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Input => "input",
            TokenKind::Output => "output",
            TokenKind::CacheWrite5m => "cache_write_5m",
            TokenKind::CacheWrite1h => "cache_write_1h",
            TokenKind::CacheRead => "cache_read",
        }
    }
}

/// Provider-neutral billable usage of one result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Input tokens neither read from nor written to the cache.
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    pub web_search_requests: u64,
    /// Inference ran in the US (`inference_geo: "us"`): the uplift applies where the model has it.
    pub geo_us: bool,
}

impl TokenUsage {
    /// The token count of one class.
    pub fn get(&self, kind: TokenKind) -> u64 {
        match kind {
            TokenKind::Input => self.input,
            TokenKind::Output => self.output,
            TokenKind::CacheWrite5m => self.cache_write_5m,
            TokenKind::CacheWrite1h => self.cache_write_1h,
            TokenKind::CacheRead => self.cache_read,
        }
    }
}

impl Add for TokenUsage {
    type Output = TokenUsage;
    /// Sums counts; `geo_us` is kept if either side had it (sums are for reporting only,
    /// price each result's usage on its own).
    fn add(self, o: TokenUsage) -> TokenUsage {
        TokenUsage {
            input: self.input + o.input,
            output: self.output + o.output,
            cache_write_5m: self.cache_write_5m + o.cache_write_5m,
            cache_write_1h: self.cache_write_1h + o.cache_write_1h,
            cache_read: self.cache_read + o.cache_read,
            web_search_requests: self.web_search_requests + o.web_search_requests,
            geo_us: self.geo_us || o.geo_us,
        }
    }
}

impl AddAssign for TokenUsage {
    fn add_assign(&mut self, o: TokenUsage) {
        *self = *self + o;
    }
}
