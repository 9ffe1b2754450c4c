//! The OpenAI surface's shared state, a leaf the router, middleware and handlers import:
//! the engine's file-based surface with OpenAI's batch metadata and file store.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use super::body::Endpoint;
use super::ids::batch_id;
use super::store::FileStore;
use super::upload::Record;
use crate::providers::openai::wire::ResponsesUsage;
use crate::simulator::engine::registry;
use crate::simulator::engine::{Engine, surface};

/// What an OpenAI batch keeps beside its records.
#[derive(Debug)]
pub struct Meta {
    pub url: String,
    pub endpoint: Endpoint,
    pub input_file_id: String,
    pub model: String,
    pub metadata: Option<BTreeMap<String, String>>,
    /// Decided at create; shown once the batch is done and the file has lines.
    pub output_file_id: String,
    pub error_file_id: String,
    /// `output_expires_after.seconds`, if given.
    pub output_expires_secs: Option<u64>,
    /// The aggregate `usage`, computed once when first shown after the end.
    pub usage: OnceLock<ResponsesUsage>,
}

pub type Batch = registry::Batch<Record, Meta>;

/// The OpenAI surface's state: the engine, the known models (any other is a 404
/// `model_not_found` line in the error file), the batches and the files.
pub type Surface = surface::Surface<Record, Meta, FileStore>;

pub type AppState = Arc<Surface>;

/// A fresh OpenAI surface on `engine`.
pub fn new_surface(engine: Arc<Engine>, models: &[String]) -> Surface {
    Surface::new(engine, models, batch_id)
}
