//! Client-facing surfaces, one per provider wire format: routes, header forwarding, error
//! envelopes and response rewriting, over the provider-neutral submit, track and settle.

pub mod anthropic;
pub mod gemini;
pub mod openai;
