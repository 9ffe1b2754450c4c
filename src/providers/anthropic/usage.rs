//! Anthropic's usage object -> the neutral [`TokenUsage`], kept here so pricing never
//! imports Anthropic wire types.

use super::wire::Usage;
use crate::usage::TokenUsage;

impl TokenUsage {
    /// Maps Anthropic's usage object (see [`token_usage`]).
    pub fn from_anthropic(u: &Usage) -> TokenUsage {
        token_usage(u)
    }
}

impl From<&Usage> for TokenUsage {
    fn from(u: &Usage) -> TokenUsage {
        token_usage(u)
    }
}

/// Without the `cache_creation` TTL split, every cache write counts as a 5-minute write,
/// as the pricing page's formula does.
pub fn token_usage(u: &Usage) -> TokenUsage {
    let (w5, w1h) = match u.cache_creation {
        Some(c) => (c.ephemeral_5m_input_tokens, c.ephemeral_1h_input_tokens),
        None => (u.cache_creation_input_tokens.unwrap_or(0), 0),
    };
    TokenUsage {
        input: u.input_tokens,
        output: u.output_tokens,
        cache_write_5m: w5,
        cache_write_1h: w1h,
        cache_read: u.cache_read_input_tokens.unwrap_or(0),
        web_search_requests: u.server_tool_use.map_or(0, |s| s.web_search_requests),
        geo_us: u.inference_geo.as_deref() == Some("us"),
        prompt_tokens: None,
    }
}
