//! The OpenAI surface's file store, a leaf the state and the handlers import: uploads
//! (with their checked batch input) and the output and error files batches write, in the
//! engine's [`Files`].

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;

use super::error::ApiError;
use super::results::Kind;
use super::upload::BatchInput;
use crate::providers::openai::wire::{FileObject, PURPOSE_BATCH_OUTPUT};
use crate::simulator::engine::files::Files;

/// The 404 of a file id.
pub fn not_found(id: &str) -> ApiError {
    ApiError::NotFound { message: format!("No such File object: {id}"), param: Some("id") }
}

/// Where a file's bytes come from.
#[derive(Debug)]
pub enum Content {
    /// Uploaded bytes, and the checked batch input when the purpose is `batch`.
    Upload { bytes: Bytes, batch: Option<Arc<BatchInput>> },
    /// A batch's output or error file, generated on download.
    Generated { batch_id: String, kind: Kind },
}

/// One stored file.
#[derive(Debug)]
pub struct FileEntry {
    pub object: FileObject,
    pub content: Content,
}

impl FileEntry {
    /// Not past its `expires_at`.
    pub fn live(&self, now: Timestamp) -> bool {
        self.object.expires_at.is_none_or(|t| t > now.as_second())
    }
}

/// Every file of the simulator's lifetime.
#[derive(Debug, Default)]
pub struct FileStore {
    pub stored: Files<FileEntry>,
    /// Generated files deleted by the client: never registered again.
    pub deleted: HashSet<String>,
}

/// A generated file to register: id, batch, kind, creation time (unix s), size.
#[derive(Debug, Clone)]
pub struct Generated {
    pub id: String,
    pub batch_id: String,
    pub kind: Kind,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

impl FileStore {
    /// A live (not expired) file.
    pub fn get(&self, id: &str, now: Timestamp) -> Result<&FileEntry, ApiError> {
        self.stored.get(id).filter(|e| e.live(now)).ok_or_else(|| not_found(id))
    }

    /// Whether a generated file still needs registering.
    pub fn wants(&self, id: &str) -> bool {
        !self.stored.contains(id) && !self.deleted.contains(id)
    }

    pub fn register(&mut self, g: Generated, bytes: u64) {
        if !self.wants(&g.id) {
            return;
        }
        let suffix = match g.kind {
            Kind::Output => "output",
            Kind::Error => "error",
        };
        let object = FileObject {
            id: g.id.clone(),
            object: "file".into(),
            bytes,
            created_at: g.created_at,
            filename: format!("{}_{suffix}.jsonl", g.batch_id),
            purpose: PURPOSE_BATCH_OUTPUT.into(),
            status: Some("processed".into()),
            expires_at: g.expires_at,
            status_details: None,
        };
        let content = Content::Generated { batch_id: g.batch_id, kind: g.kind };
        self.stored.insert(object.id.clone(), FileEntry { object, content });
    }
}
