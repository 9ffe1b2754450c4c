//! `usageMetadata` -> neutral billable classes (providers-next 1.6): `promptTokenCount`
//! includes the cached tokens, which bill at the cached rate; thinking bills as output;
//! `toolUsePromptTokenCount` is outside the prompt count and bills as input
//! (UNCONFIRMED, the conservative reading). The tier is chosen from `promptTokenCount`
//! (cached included, as the pricing page words it: UNCONFIRMED), so `prompt_tokens` is set.

use super::wire::UsageMetadata;
use crate::usage::TokenUsage;

pub fn from_gemini(u: &UsageMetadata) -> TokenUsage {
    let cached = u.cached_content_token_count.min(u.prompt_token_count);
    TokenUsage {
        input: u.prompt_token_count - cached + u.tool_use_prompt_token_count,
        output: u.candidates_token_count + u.thoughts_token_count,
        cache_read: cached,
        prompt_tokens: Some(u.prompt_token_count),
        ..TokenUsage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_thoughts_and_tool_use_land_in_their_classes() {
        let u = UsageMetadata {
            prompt_token_count: 1000,
            cached_content_token_count: 300,
            candidates_token_count: 11,
            thoughts_token_count: 829,
            tool_use_prompt_token_count: 7,
            ..UsageMetadata::default()
        };
        let t = from_gemini(&u);
        assert_eq!((t.input, t.cache_read, t.output), (707, 300, 840));
        // The tier sees the prompt (cached included), not the tool-use tokens.
        assert_eq!(t.prompt_len(), 1000);
    }
}
