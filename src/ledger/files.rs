//! Uploaded files (the OpenAI Files API and compatible upstreams): who owns each file,
//! what it is, and the estimate of a batch input file, kept from the upload to the batch
//! create that reserves against it. Output and error files are recorded when their batch
//! is first seen ended, owned by the batch's project. Provider-neutral: the ids are the
//! upstream's, the estimate an opaque JSON the provider wrote.

use jiff::Timestamp;

use super::LedgerFuture;

/// One file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    /// The upstream's name (`openai`, `together`, ...).
    pub provider: String,
    /// The upstream's file id, which clients see unchanged.
    pub file_id: String,
    pub project: String,
    /// `batch` for inputs, `batch_output` for a batch's output and error files.
    pub purpose: String,
    pub filename: String,
    pub bytes: u64,
    /// Requests in an input file; 0 for output files.
    pub lines: u64,
    pub created_at: Timestamp,
    /// The provider's estimate of an input file (JSON); `None` for output files.
    pub estimate_json: Option<String>,
    /// For output and error files: the upstream id of the batch that wrote them.
    pub batch_id: Option<String>,
}

/// A page of one project's files, newest first (`after`: the page after this file id).
#[derive(Clone, Copy, Debug)]
pub struct FilesQuery<'a> {
    pub provider: &'a str,
    pub project: &'a str,
    pub after: Option<&'a str>,
    pub limit: u32,
    /// Oldest first instead.
    pub ascending: bool,
    pub purpose: Option<&'a str>,
}

/// The files part of the ledger; every backend implements it.
pub trait FileLedger: Send + Sync {
    /// Records a file; false if one with that provider and id exists (unchanged).
    fn record_file<'a>(&'a self, f: &'a FileRecord) -> LedgerFuture<'a, bool>;
    /// A file not deleted, by provider and id.
    fn file<'a>(
        &'a self,
        provider: &'a str,
        file_id: &'a str,
    ) -> LedgerFuture<'a, Option<FileRecord>>;
    fn project_files<'a>(&'a self, q: FilesQuery<'a>) -> LedgerFuture<'a, Vec<FileRecord>>;
    /// Marks a file deleted; false if it was not there.
    fn delete_file<'a>(&'a self, provider: &'a str, file_id: &'a str) -> LedgerFuture<'a, bool>;
}

/// The files ledger of a backend that has none yet: every call fails "not supported".
pub struct Unsupported;

impl FileLedger for Unsupported {
    fn record_file<'a>(&'a self, _f: &'a FileRecord) -> LedgerFuture<'a, bool> {
        Box::pin(async { Err(super::LedgerError::Unsupported("files")) })
    }
    fn file<'a>(&'a self, _p: &'a str, _id: &'a str) -> LedgerFuture<'a, Option<FileRecord>> {
        Box::pin(async { Err(super::LedgerError::Unsupported("files")) })
    }
    fn project_files<'a>(&'a self, _q: FilesQuery<'a>) -> LedgerFuture<'a, Vec<FileRecord>> {
        Box::pin(async { Err(super::LedgerError::Unsupported("files")) })
    }
    fn delete_file<'a>(&'a self, _p: &'a str, _id: &'a str) -> LedgerFuture<'a, bool> {
        Box::pin(async { Err(super::LedgerError::Unsupported("files")) })
    }
}
