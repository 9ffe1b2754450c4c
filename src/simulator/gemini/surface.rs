//! The Gemini surface's shared state, a leaf the router, middleware and handlers import:
//! the engine's file-based surface with Gemini's batch metadata, files and upload sessions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use serde_json::Value;

use super::ids::batch_id;
use super::request::Invalid;
use crate::providers::gemini::wire::File;
use crate::simulator::engine::files::Files;
use crate::simulator::engine::registry;
use crate::simulator::engine::usage::Breakpoint;
use crate::simulator::engine::{Engine, surface};

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
    pub stored: Files<Stored>,
    pub uploads: HashMap<String, Pending>,
    pub next_upload: u64,
    pub deleted_results: HashSet<String>,
}

/// The Gemini surface's state: the engine, the known models (without `models/`), the
/// batches, and the files and upload sessions.
pub type Surface = surface::Surface<Record, Meta, FileStore>;

pub type AppState = Arc<Surface>;

/// A fresh Gemini surface on `engine`.
pub fn new_surface(engine: Arc<Engine>, models: &[String]) -> Surface {
    Surface::new(engine, models, batch_id)
}
