//! The Gemini surface's shared state, a leaf the router, middleware and handlers import.
//! The locks are never held together.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::BytesMut;
use jiff::Timestamp;
use serde_json::Value;

use super::ids::batch_id;
use super::request::Invalid;
use crate::providers::gemini::wire::File;
use crate::simulator::engine::Engine;
use crate::simulator::engine::registry::{self, Registry};
use crate::simulator::engine::usage::Breakpoint;

/// What is kept of one request between create and results.
#[derive(Debug)]
pub struct Record {
    /// The file line's `key` (file input) .
    pub key: Option<Box<str>>,
    /// Inline `metadata`, echoed back with the response.
    pub metadata: Option<BTreeMap<String, String>>,
    pub input_tokens: u64,
    pub image_tokens: u64,
    pub max_output: u32,
    pub thinking: bool,
    pub thinking_budget: Option<u32>,
    pub tool_use: bool,
    pub breakpoints: Box<[Breakpoint]>,
    pub invalid: Option<Box<Invalid>>,
}

impl registry::Record for Record {
    fn breakpoints(&self) -> &[Breakpoint] {
        &self.breakpoints
    }
    fn rejected(&self) -> bool {
        self.invalid.is_some()
    }
}

/// Where a batch's requests came from, and so where its results go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Inline,
    /// `files/{id}` of the input.
    File(String),
}

/// What a Gemini batch keeps beside its records.
#[derive(Debug)]
pub struct Meta {
    /// Without the `models/` prefix.
    pub model: String,
    pub display_name: Option<String>,
    pub source: Source,
    pub priority: Option<Value>,
    /// Size of the results file, computed once when first asked.
    pub results_bytes: OnceLock<u64>,
}

pub type Batch = registry::Batch<Record, Meta>;

/// An uploaded file.
#[derive(Debug)]
pub struct Stored {
    pub seq: u64,
    pub file: File,
    pub bytes: bytes::Bytes,
}

/// A resumable upload in progress.
#[derive(Debug)]
pub struct Pending {
    pub declared: u64,
    pub mime_type: Option<String>,
    pub display_name: Option<String>,
    pub name: Option<String>,
    pub received: BytesMut,
}

/// Uploaded files and upload sessions.
#[derive(Debug, Default)]
pub struct FileStore {
    pub by_id: HashMap<String, Stored>,
    pub order: BTreeMap<u64, String>,
    pub next_seq: u64,
    pub uploads: HashMap<String, Pending>,
    pub next_upload: u64,
    pub deleted_results: HashSet<String>,
}

/// The Gemini surface's state.
#[derive(Debug)]
pub struct Surface {
    engine: Arc<Engine>,
    /// Known model ids (without `models/`).
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

    pub fn batches(&self) -> (MutexGuard<'_, Registry<Record, Meta>>, Timestamp) {
        let mut reg = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        reg.advance(now);
        (reg, now)
    }

    pub fn files(&self) -> MutexGuard<'_, FileStore> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn live_batches(&self) -> usize {
        self.batches().0.live_batches()
    }
}
