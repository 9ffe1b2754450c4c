//! The price table (`pricing.toml`) and the cost engine.
//!
//! Prices live in configuration, never in code: providers change them often, and a batch
//! must be priced by the entry in force when it was submitted. Internally every price is
//! an exact pico-dollar amount per token, so costs over millions of requests never drift.

mod check;
mod cost;
mod entry;
mod raw;
mod table;

/// Re-exported from the leaf [`crate::usage`] so older paths keep compiling.
pub use crate::usage::{TokenKind, TokenUsage};
pub use check::{CheckArgs, run_check};
pub use cost::CostPair;
pub use table::PriceTable;

use crate::money::{Money, Ratio};

/// Per-token prices of the five token classes, in pico-dollars per token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    pub input: Money,
    pub output: Money,
    pub cache_write_5m: Money,
    pub cache_write_1h: Money,
    pub cache_read: Money,
}

impl Rates {
    /// The rate of one token class.
    pub fn get(&self, kind: TokenKind) -> Money {
        match kind {
            TokenKind::Input => self.input,
            TokenKind::Output => self.output,
            TokenKind::CacheWrite5m => self.cache_write_5m,
            TokenKind::CacheWrite1h => self.cache_write_1h,
            TokenKind::CacheRead => self.cache_read,
        }
    }
}

/// How a provider's prices are shaped: which token classes exist and how the batch price of
/// cached input is derived. A provider's `kind` in `pricing.toml` (and an upstream's in
/// `batchcost.toml`) defaults to its name for these three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// Five classes (cache writes at two TTLs); optional US uplift; no tiers.
    Anthropic,
    /// Input, cached input, output (reasoning inside); batch cached input from
    /// `batch_cache_read`, else the batch input price.
    OpenAi,
    /// Input, cached input, output (thinking inside); batch cached input from
    /// `batch_cache_read`, else the standard cached price (reference 1.8: a cache hit is
    /// discounted in batch only where the batch tab lists it).
    Gemini,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] =
        [ProviderKind::Anthropic, ProviderKind::OpenAi, ProviderKind::Gemini];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Gemini => "gemini",
        }
    }

    pub fn parse(s: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Rates above a prompt-length threshold (Gemini Pro's long context): the whole request is
/// priced at these, not only the tokens past the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongContext {
    /// A prompt of more than this many tokens takes the long rates.
    pub threshold: u64,
    pub batch: Rates,
    pub list: Rates,
}

/// Batch and standard rates of one tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatePair {
    pub batch: Rates,
    pub list: Rates,
}

/// The prices of one model in force at one instant, ready to price usages.
///
/// For gateways: [`ResolvedPrice::cost`] prices a settled usage (tier from its actual
/// prompt length); for a worst case use [`ResolvedPrice::cost_for_prompt`] with the upper
/// bound on the prompt, or [`ResolvedPrice::rates_for_prompt`] / [`tier_threshold`]
/// directly. A request without an output cap is bounded by `max_output_tokens`.
///
/// [`tier_threshold`]: ResolvedPrice::tier_threshold
#[derive(Clone, Debug)]
pub struct ResolvedPrice {
    /// The provider (upstream) name, e.g. `openai` or `together`: the `provider` label.
    pub provider: String,
    pub kind: ProviderKind,
    /// Canonical id (aliases resolve to it), the `model` metric label.
    pub model: String,
    pub effective_from: jiff::civil::Date,
    pub source: String,
    pub unconfirmed: bool,
    /// Batch-tier prices per token (the short-context tier where there are two).
    pub batch: Rates,
    /// Standard (synchronous) list prices per token, for savings and FOCUS `ListCost`.
    pub list: Rates,
    /// The long-context tier, if the model has one.
    pub long_context: Option<LongContext>,
    /// The model's output maximum (from the table), for requests without an output cap.
    pub max_output_tokens: Option<u64>,
    /// An embeddings model: only input is priced, output is always zero.
    pub embeddings: bool,
    /// Per web search at standard price.
    pub web_search_fee: Money,
    /// Per web search in a batch (no discount unless the table says so).
    pub web_search_fee_batch: Money,
    /// `Some(11/10)` when the model charges the US data-residency uplift.
    pub geo_us: Option<Ratio>,
}

/// Why a price table was rejected. Display is the line-numbered message users see.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// The file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax or a wrong type / unknown key caught while deserializing.
    #[error("{origin}:{line}:{column}: {key}: {message}")]
    Syntax { origin: String, line: usize, column: usize, key: String, message: String },
    /// A well-formed table whose content breaks a rule (negative price, duplicate id, ...).
    #[error("{origin}:{line}: {key}: {message}")]
    Invalid { origin: String, line: usize, key: String, message: String },
}

impl PricingError {
    /// The 1-based line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            PricingError::Io { .. } => None,
            PricingError::Syntax { line, .. } | PricingError::Invalid { line, .. } => Some(*line),
        }
    }

    /// The key path the error points at (`models[3].prices[1].cache_read`), if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            PricingError::Io { .. } => None,
            PricingError::Syntax { key, .. } | PricingError::Invalid { key, .. } => Some(key),
        }
    }
}
