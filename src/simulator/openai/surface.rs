//! The OpenAI surface's shared state, a leaf the router, middleware and handlers import:
//! the engine, the known models, the batches and the files. The two locks are never held
//! together (handlers take one, copy what they need, release it, then take the other).

use std::collections::{BTreeMap, HashSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use jiff::Timestamp;

use super::body::Endpoint;
use super::ids::batch_id;
use super::store::FileStore;
use super::upload::Record;
use crate::providers::openai::wire::ResponsesUsage;
use crate::simulator::engine::Engine;
use crate::simulator::engine::registry::{self, Registry};

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

/// The OpenAI surface's state.
#[derive(Debug)]
pub struct Surface {
    engine: Arc<Engine>,
    /// Known model ids; any other is a 404 `model_not_found` line in the error file.
    pub models: HashSet<String>,
    batches: Mutex<Registry<Record, Meta>>,
    files: Mutex<FileStore>,
}

pub type AppState = Arc<Surface>;

impl Deref for Surface {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl Surface {
    pub fn new(engine: Arc<Engine>, models: &[String]) -> Self {
        let batches = Mutex::new(Registry::new(engine.lifecycle, batch_id));
        Surface {
            engine,
            models: models.iter().cloned().collect(),
            batches,
            files: Mutex::new(FileStore::default()),
        }
    }

    /// The batches, brought up to the current simulated time.
    pub fn batches(&self) -> (MutexGuard<'_, Registry<Record, Meta>>, Timestamp) {
        let mut reg = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        reg.advance(now);
        (reg, now)
    }

    pub fn files(&self) -> MutexGuard<'_, FileStore> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Batches held (not deleted).
    pub fn live_batches(&self) -> usize {
        self.batches().0.live_batches()
    }
}
