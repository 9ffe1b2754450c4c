//! Anthropic Message Batches API.

pub mod wire;
