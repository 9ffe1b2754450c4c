//! Anthropic Message Batches API.

pub mod client;
pub mod usage;
pub mod wire;
