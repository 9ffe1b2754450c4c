//! The Anthropic view of the engine's registry: `message_batch` objects, Anthropic's
//! status names (`in_progress`, `canceling`, `ended`), and its error wording.

use jiff::Timestamp;

use super::error::ApiError;
use super::ids::batch_id;
use super::ingest::RequestRecord;
use crate::clock::rfc3339_micros;
use crate::providers::anthropic::wire::{MessageBatch, ProcessingStatus, RequestCounts};
use crate::simulator::engine::registry::{self, Cursor, Refusal};

pub use crate::simulator::engine::registry::{Lifecycle, Outcome};

/// An Anthropic batch: the engine's batch with nothing beside the records.
pub type Batch = registry::Batch<RequestRecord, ()>;
pub type ResultsSource = registry::ResultsSource<RequestRecord>;

impl registry::Record for RequestRecord {
    fn breakpoints(&self) -> &[crate::simulator::engine::usage::Breakpoint] {
        &self.breakpoints
    }
    fn rejected(&self) -> bool {
        self.invalid.is_some()
    }
}

/// The batch object as the API shows it at `now` (after the registry has advanced).
pub trait View {
    fn view(&self, now: Timestamp, base_url: &str) -> MessageBatch;
}

impl View for Batch {
    fn view(&self, now: Timestamp, base_url: &str) -> MessageBatch {
        let (status, counts, ended_at, results_url) = match &self.ended {
            Some(e) => (
                ProcessingStatus::Ended,
                RequestCounts {
                    processing: 0,
                    succeeded: e.counts.succeeded,
                    errored: e.counts.errored,
                    canceled: e.counts.canceled,
                    expired: e.counts.expired,
                },
                Some(rfc3339_micros(e.at)),
                Some(format!("{base_url}/v1/messages/batches/{}/results", self.id)),
            ),
            None => {
                let status = match self.cancel_at {
                    Some(_) => ProcessingStatus::Canceling,
                    None => ProcessingStatus::InProgress,
                };
                (
                    status,
                    RequestCounts { processing: self.n, ..RequestCounts::default() },
                    None,
                    None,
                )
            }
        };
        MessageBatch {
            id: self.id.clone(),
            object_type: "message_batch".into(),
            processing_status: status,
            request_counts: counts,
            ended_at,
            created_at: rfc3339_micros(self.created_at),
            expires_at: rfc3339_micros(self.expires_at()),
            archived_at: (now >= self.archive_at()).then(|| rfc3339_micros(self.archive_at())),
            cancel_initiated_at: self.cancel_at.map(rfc3339_micros),
            results_url,
        }
    }
}

/// Parsed list query.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    pub limit: usize,
    pub before_id: Option<String>,
    pub after_id: Option<String>,
}

/// Every Anthropic batch, with Anthropic's error wording over the engine's refusals.
#[derive(Debug)]
pub struct Registry(registry::Registry<RequestRecord, ()>);

impl Registry {
    pub fn new(lc: Lifecycle) -> Self {
        Registry(registry::Registry::new(lc, batch_id))
    }

    pub fn advance(&mut self, now: Timestamp) {
        self.0.advance(now);
    }

    pub fn create(&mut self, records: Vec<RequestRecord>, now: Timestamp) -> &Batch {
        self.0.create(records, (), now)
    }

    pub fn get(&self, id: &str) -> Result<&Batch, ApiError> {
        self.0.get(id).map_err(|r| refusal(r, id))
    }

    /// Cancel: `canceling` until the in-flight requests are done. On an ended or already
    /// canceling batch it changes nothing and returns the batch as it is.
    pub fn cancel(&mut self, id: &str, now: Timestamp) -> Result<&Batch, ApiError> {
        self.0.cancel(id, now).map_err(|r| refusal(r, id))
    }

    /// Delete: only once processing has ended.
    pub fn delete(&mut self, id: &str) -> Result<(), ApiError> {
        self.0.delete(id).map(drop).map_err(|r| refusal(r, id))
    }

    pub fn results(&self, id: &str, now: Timestamp) -> Result<ResultsSource, ApiError> {
        self.0.results(id, now).map_err(|r| refusal(r, id))
    }

    /// One page, newest first; `after_id` pages towards older batches, `before_id`
    /// towards newer ones, as the SDK's auto-pagination expects.
    pub fn list(&self, page: &PageQuery) -> Result<(Vec<&Batch>, bool), ApiError> {
        let (cursor, name, id) = match (&page.before_id, &page.after_id) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidRequest(
                    "before_id, after_id: only one of them may be given".into(),
                ));
            }
            (Some(b), None) => (Cursor::NewerThan(b.clone()), "before_id", b.as_str()),
            (None, Some(a)) => (Cursor::OlderThan(a.clone()), "after_id", a.as_str()),
            (None, None) => (Cursor::Newest, "", ""),
        };
        self.0.list(&cursor, page.limit).map_err(|_| {
            ApiError::InvalidRequest(format!("{name}: no message batch with id '{id}'"))
        })
    }

    pub fn live_batches(&self) -> usize {
        self.0.live_batches()
    }
}

/// Anthropic's words for each refusal.
fn refusal(r: Refusal, id: &str) -> ApiError {
    match r {
        Refusal::NotFound | Refusal::BadCursor => {
            ApiError::NotFound(format!("No message batch found with id '{id}'"))
        }
        Refusal::NotEnded => ApiError::NotFound(format!(
            "Results for batch {id} are not available: processing has not ended"
        )),
        Refusal::Archived => ApiError::NotFound(format!(
            "Results for batch {id} are no longer available: the batch was archived"
        )),
        Refusal::StillProcessing => ApiError::InvalidRequest(format!(
            "Batch {id} cannot be deleted while it is still processing; cancel it first"
        )),
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
