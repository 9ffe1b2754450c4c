//! Provider-neutral token classes: what pricing, the ledger, metrics and reports count.
//!
//! A leaf module on purpose: each provider maps its own usage object into [`TokenUsage`]
//! (e.g. `providers::anthropic::usage`), so pricing never imports a wire type.

use std::ops::{Add, AddAssign};

/// The token classes that are priced separately; `as_str` values are the `kind` metric
/// label of `batchcost_tokens_total`. OpenAI reasoning and Gemini thinking tokens are
/// `Output` (both bill at the output rate); providers without cache writes never fill the
/// write classes.
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
    /// Output tokens, reasoning / thinking included.
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    /// Cached input tokens (OpenAI `cached_tokens`, Gemini `cachedContentTokenCount`).
    pub cache_read: u64,
    pub web_search_requests: u64,
    /// Inference ran in the US (`inference_geo: "us"`): the uplift applies where the model has it.
    pub geo_us: bool,
    /// The prompt length that selects a long-context price tier (Gemini `promptTokenCount`,
    /// cached tokens included). `None`: [`TokenUsage::prompt_len`] derives it from the input
    /// classes. Set it when `input` holds tokens that do not count towards the threshold
    /// (Gemini `toolUsePromptTokenCount`, billed as input but outside the prompt count).
    pub prompt_tokens: Option<u64>,
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

    /// The prompt length compared with a tier threshold: `prompt_tokens` when set, else
    /// every input class (uncached, cached and written).
    pub fn prompt_len(&self) -> u64 {
        self.prompt_tokens
            .unwrap_or(self.input + self.cache_read + self.cache_write_5m + self.cache_write_1h)
    }
}

impl Add for TokenUsage {
    type Output = TokenUsage;
    /// Sums counts; `geo_us` is kept if either side had it, and the prompt lengths add
    /// (sums are for reporting only, price each result's usage on its own).
    fn add(self, o: TokenUsage) -> TokenUsage {
        let prompt_tokens = match (self.prompt_tokens, o.prompt_tokens) {
            (None, None) => None,
            _ => Some(self.prompt_len() + o.prompt_len()),
        };
        TokenUsage {
            input: self.input + o.input,
            output: self.output + o.output,
            cache_write_5m: self.cache_write_5m + o.cache_write_5m,
            cache_write_1h: self.cache_write_1h + o.cache_write_1h,
            cache_read: self.cache_read + o.cache_read,
            web_search_requests: self.web_search_requests + o.web_search_requests,
            geo_us: self.geo_us || o.geo_us,
            prompt_tokens,
        }
    }
}

impl AddAssign for TokenUsage {
    fn add_assign(&mut self, o: TokenUsage) {
        *self = *self + o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_add_every_field() {
        let a = TokenUsage {
            input: 1,
            output: 2,
            cache_write_5m: 3,
            cache_write_1h: 4,
            cache_read: 5,
            web_search_requests: 6,
            geo_us: false,
            prompt_tokens: None,
        };
        let mut b = a;
        b.geo_us = true;
        b += a;
        assert_eq!(
            b,
            TokenUsage {
                input: 2,
                output: 4,
                cache_write_5m: 6,
                cache_write_1h: 8,
                cache_read: 10,
                web_search_requests: 12,
                geo_us: true,
                prompt_tokens: None,
            }
        );
        // One side with an explicit prompt length: the other contributes its derived one.
        let c = TokenUsage { input: 7, prompt_tokens: Some(100), ..Default::default() } + a;
        assert_eq!(c.prompt_tokens, Some(100 + 1 + 5 + 3 + 4));
        assert_eq!(a.prompt_len(), 13);
    }
}
