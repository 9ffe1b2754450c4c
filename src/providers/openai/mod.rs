//! OpenAI Batch API (Files + Batches) and every OpenAI-compatible batch upstream: wire
//! types (shared with the simulator), the batch-file front-end of the estimator, status
//! and usage mapping, and output/error-file line decoding.

pub mod batchfile;
pub mod client;
pub mod compat;
pub mod provider;
pub mod results;
pub mod status;
pub mod usage;
pub mod wire;
