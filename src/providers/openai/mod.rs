//! OpenAI Batch API (Files + Batches) and every OpenAI-compatible batch upstream.

pub mod wire;
