//! OpenAI's usage objects onto the neutral token classes (reference batch-apis 2.4, 4.3).
//!
//! OpenAI has no cache-write class in the price table (writes bill as input), so cached
//! tokens are the only split of the prompt: `cache_read` = cached, `input` = the rest.
//! Reasoning tokens are already inside the output count, so they are never added again.

use super::wire::{ChatUsage, EmbeddingsUsage, ResponsesUsage};
use crate::usage::TokenUsage;

/// Prompt and output counts with the cached part of the prompt, whatever the endpoint.
pub fn split(prompt: u64, cached: u64, output: u64) -> TokenUsage {
    // A cached count above the prompt is a provider bug; never bill negative input.
    let cached = cached.min(prompt);
    TokenUsage { input: prompt - cached, cache_read: cached, output, ..Default::default() }
}

impl TokenUsage {
    /// `/v1/chat/completions` and `/v1/completions`: `prompt_tokens` (cached inside),
    /// `completion_tokens` (reasoning inside).
    pub fn from_openai_chat(u: &ChatUsage) -> TokenUsage {
        let cached = u.prompt_tokens_details.map_or(0, |d| d.cached_tokens);
        split(u.prompt_tokens, cached, u.completion_tokens)
    }

    /// `/v1/responses` (and a batch's aggregate `usage`): `input_tokens` (cached inside),
    /// `output_tokens` (reasoning inside).
    pub fn from_openai_responses(u: &ResponsesUsage) -> TokenUsage {
        split(u.input_tokens, u.input_tokens_details.cached_tokens, u.output_tokens)
    }

    /// `/v1/embeddings`: input only.
    pub fn from_openai_embeddings(u: &EmbeddingsUsage) -> TokenUsage {
        split(u.prompt_tokens, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::openai::wire::{
        CompletionTokensDetails, InputTokensDetails, OutputTokensDetails, PromptTokensDetails,
    };

    #[test]
    fn cached_is_split_out_and_reasoning_stays_inside_output() {
        let chat = ChatUsage {
            prompt_tokens: 900,
            completion_tokens: 120,
            total_tokens: 1020,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: 512,
                ..Default::default()
            }),
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: 64,
                ..Default::default()
            }),
        };
        let u = TokenUsage::from_openai_chat(&chat);
        assert_eq!((u.input, u.cache_read, u.output), (388, 512, 120));
        let r = ResponsesUsage {
            input_tokens: 900,
            input_tokens_details: InputTokensDetails {
                cached_tokens: 512,
                cache_write_tokens: None,
            },
            output_tokens: 120,
            output_tokens_details: OutputTokensDetails { reasoning_tokens: 64 },
            total_tokens: 1020,
        };
        assert_eq!(TokenUsage::from_openai_responses(&r), u);
        let e = TokenUsage::from_openai_embeddings(&EmbeddingsUsage {
            prompt_tokens: 7,
            total_tokens: 7,
        });
        assert_eq!((e.input, e.output, e.cache_read), (7, 0, 0));
        assert_eq!(split(5, 9, 0).input, 0);
    }
}
