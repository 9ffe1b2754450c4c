//! The price table (`pricing.toml`) and the cost engine.
//!
//! Prices live in configuration, never in code: providers change them often, and a batch
//! must be priced by the entry in force when it was submitted. Internally every price is
//! an exact pico-dollar amount per token, so costs over millions of requests never drift.

mod check;
mod cost;
mod raw;
mod table;

pub use check::{CheckArgs, run_check};
pub use cost::{CostPair, TokenKind, TokenUsage};
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

/// The prices of one model in force at one instant, ready to price usages.
#[derive(Clone, Debug)]
pub struct ResolvedPrice {
    pub provider: String,
    /// Canonical id (aliases resolve to it), the `model` metric label.
    pub model: String,
    pub effective_from: jiff::civil::Date,
    pub source: String,
    pub unconfirmed: bool,
    /// Batch-tier prices per token.
    pub batch: Rates,
    /// Standard (synchronous) list prices per token, for savings and FOCUS `ListCost`.
    pub list: Rates,
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
