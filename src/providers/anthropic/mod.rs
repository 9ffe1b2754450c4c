//! Anthropic Message Batches API.

pub mod client;
pub mod wire;
