//! Batches and their lifecycle in simulated time. Nothing runs in the background: every
//! call first brings the registry up to "now" ([`Registry::advance`]), which ends the
//! batches whose end time has passed (in end-time order, so the shared prompt cache sees
//! the same sequence whatever the polling pattern) and archives those past retention.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::error::ApiError;
use super::ids::batch_id;
use super::ingest::RequestRecord;
use super::time::secs;
use super::usage::{Draws, PromptCache};
use crate::clock::rfc3339_micros;
use crate::providers::anthropic::wire::{MessageBatch, ProcessingStatus, RequestCounts};

/// Timing and outcome settings the lifecycle needs (from `SimConfig`).
#[derive(Clone, Copy, Debug)]
pub struct Lifecycle {
    pub seed: u64,
    /// Simulated seconds before the first request completes.
    pub startup_secs: f64,
    /// Requests completed per simulated second, per batch.
    pub requests_per_second: f64,
    /// Simulated seconds between a cancel and the end of the batch; requests that complete
    /// within it were in flight and still count.
    pub cancel_grace_secs: f64,
    pub errored_fraction: f64,
}

const EXPIRY: SignedDuration = SignedDuration::from_hours(24);
const RETENTION: SignedDuration = SignedDuration::from_hours(29 * 24);

/// Final state of one request, fixed when its batch ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Cache use in tokens: read, 5-minute write, 1-hour write.
    Succeeded {
        read: u32,
        write_5m: u32,
        write_1h: u32,
    },
    Errored,
    Canceled,
    Expired,
}

#[derive(Debug)]
struct Ended {
    at: Timestamp,
    counts: RequestCounts,
    outcomes: Option<Arc<Vec<Outcome>>>,
}

#[derive(Debug)]
pub struct Batch {
    seq: u64,
    id: String,
    created_at: Timestamp,
    n: u64,
    cancel_at: Option<Timestamp>,
    records: Option<Arc<Vec<RequestRecord>>>,
    ended: Option<Ended>,
}

impl Batch {
    fn expires_at(&self) -> Timestamp {
        self.created_at.saturating_add(EXPIRY).unwrap_or(self.created_at)
    }

    fn archive_at(&self) -> Timestamp {
        self.created_at.saturating_add(RETENTION).unwrap_or(self.created_at)
    }

    /// When request `i` (in processing order) completes if nothing stops it.
    fn completion(&self, i: u64, lc: &Lifecycle) -> Timestamp {
        let offset = lc.startup_secs + (i + 1) as f64 / lc.requests_per_second;
        self.created_at.saturating_add(secs(offset)).unwrap_or(Timestamp::MAX)
    }

    fn end_time(&self, lc: &Lifecycle) -> Timestamp {
        let mut end = self.completion(self.n.saturating_sub(1), lc).min(self.expires_at());
        if let Some(c) = self.cancel_at {
            end = end.min(c.saturating_add(secs(lc.cancel_grace_secs)).unwrap_or(c));
        }
        end
    }

    /// The batch object as the API shows it at `now` (after [`Registry::advance`]).
    pub fn view(&self, now: Timestamp, base_url: &str) -> MessageBatch {
        let (status, counts, ended_at, results_url) = match &self.ended {
            Some(e) => (
                ProcessingStatus::Ended,
                e.counts,
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

/// What a results download needs, detached from the registry lock.
#[derive(Debug, Clone)]
pub struct ResultsSource {
    pub batch_id: String,
    pub batch_seq: u64,
    pub records: Arc<Vec<RequestRecord>>,
    pub outcomes: Arc<Vec<Outcome>>,
}

/// Every batch of the simulator's lifetime and the shared prompt cache.
#[derive(Debug)]
pub struct Registry {
    lc: Lifecycle,
    batches: BTreeMap<u64, Batch>,
    by_id: HashMap<String, u64>,
    /// Deleted ids stay usable as list cursors.
    deleted: HashMap<String, u64>,
    next_seq: u64,
    cache: PromptCache,
}

impl Registry {
    pub fn new(lc: Lifecycle) -> Self {
        Registry {
            lc,
            batches: BTreeMap::new(),
            by_id: HashMap::new(),
            deleted: HashMap::new(),
            next_seq: 1,
            cache: PromptCache::default(),
        }
    }

    pub fn create(&mut self, records: Vec<RequestRecord>, now: Timestamp) -> &Batch {
        self.advance(now);
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = batch_id(self.lc.seed, seq);
        let batch = Batch {
            seq,
            id: id.clone(),
            created_at: now,
            n: records.len() as u64,
            cancel_at: None,
            records: Some(Arc::new(records)),
            ended: None,
        };
        self.by_id.insert(id, seq);
        self.batches.entry(seq).or_insert(batch)
    }

    /// Ends every batch whose end time is at or before `now`, oldest end first, and
    /// archives those past retention.
    pub fn advance(&mut self, now: Timestamp) {
        let lc = self.lc;
        let mut due: Vec<(Timestamp, u64)> = self
            .batches
            .values()
            .filter(|b| b.ended.is_none())
            .map(|b| (b.end_time(&lc), b.seq))
            .filter(|(end, _)| *end <= now)
            .collect();
        due.sort();
        for (end, seq) in due {
            self.finish(seq, end);
        }
        for b in self.batches.values_mut() {
            if now >= b.archive_at() && b.records.is_some() {
                b.records = None;
                if let Some(e) = &mut b.ended {
                    e.outcomes = None;
                }
            }
        }
    }

    fn finish(&mut self, seq: u64, end: Timestamp) {
        let lc = self.lc;
        let Some(b) = self.batches.get_mut(&seq) else { return };
        let draws = Draws { seed: lc.seed, batch_seq: seq };
        let unprocessed = match b.cancel_at {
            Some(c)
                if c.saturating_add(secs(lc.cancel_grace_secs)).unwrap_or(c) <= b.expires_at() =>
            {
                Outcome::Canceled
            }
            _ => Outcome::Expired,
        };
        let mut counts = RequestCounts::default();
        let records = b.records.clone().unwrap_or_default();
        let mut outcomes = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let i = i as u64;
            let t = b.completion(i, &lc);
            let outcome = if t > end {
                unprocessed
            } else if r.invalid.is_some() || draws.fails(i, lc.errored_fraction) {
                Outcome::Errored
            } else {
                let u = self.cache.apply(&r.breakpoints, t);
                let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                Outcome::Succeeded {
                    read: n(u.read),
                    write_5m: n(u.write_5m),
                    write_1h: n(u.write_1h),
                }
            };
            match outcome {
                Outcome::Succeeded { .. } => counts.succeeded += 1,
                Outcome::Errored => counts.errored += 1,
                Outcome::Canceled => counts.canceled += 1,
                Outcome::Expired => counts.expired += 1,
            }
            outcomes.push(outcome);
        }
        self.cache.prune(end);
        b.ended = Some(Ended { at: end, counts, outcomes: Some(Arc::new(outcomes)) });
    }

    pub fn get(&self, id: &str) -> Result<&Batch, ApiError> {
        self.by_id.get(id).and_then(|seq| self.batches.get(seq)).ok_or_else(|| not_found(id))
    }

    /// Cancel: `canceling` until the in-flight requests are done. On an ended or already
    /// canceling batch it changes nothing and returns the batch as it is.
    pub fn cancel(&mut self, id: &str, now: Timestamp) -> Result<&Batch, ApiError> {
        self.advance(now);
        let seq = *self.by_id.get(id).ok_or_else(|| not_found(id))?;
        let b = self.batches.get_mut(&seq).ok_or_else(|| not_found(id))?;
        if b.ended.is_none() && b.cancel_at.is_none() {
            b.cancel_at = Some(now);
        }
        self.advance(now);
        self.get(id)
    }

    /// Delete: only once processing has ended.
    pub fn delete(&mut self, id: &str) -> Result<(), ApiError> {
        let b = self.get(id)?;
        if b.ended.is_none() {
            return Err(ApiError::InvalidRequest(format!(
                "Batch {id} cannot be deleted while it is still processing; cancel it first"
            )));
        }
        let seq = b.seq;
        self.batches.remove(&seq);
        self.by_id.remove(id);
        self.deleted.insert(id.to_string(), seq);
        Ok(())
    }

    pub fn results(&self, id: &str, now: Timestamp) -> Result<ResultsSource, ApiError> {
        let b = self.get(id)?;
        let Some(ended) = &b.ended else {
            return Err(ApiError::NotFound(format!(
                "Results for batch {id} are not available: processing has not ended"
            )));
        };
        match (&b.records, &ended.outcomes) {
            (Some(records), Some(outcomes)) if now < b.archive_at() => Ok(ResultsSource {
                batch_id: b.id.clone(),
                batch_seq: b.seq,
                records: records.clone(),
                outcomes: outcomes.clone(),
            }),
            _ => Err(ApiError::NotFound(format!(
                "Results for batch {id} are no longer available: the batch was archived"
            ))),
        }
    }

    /// One page, newest first; `after_id` pages towards older batches, `before_id`
    /// towards newer ones, as the SDK's auto-pagination expects.
    pub fn list(&self, page: &PageQuery) -> Result<(Vec<&Batch>, bool), ApiError> {
        let cursor = |id: &str, name: &str| {
            self.by_id.get(id).or_else(|| self.deleted.get(id)).copied().ok_or_else(|| {
                ApiError::InvalidRequest(format!("{name}: no message batch with id '{id}'"))
            })
        };
        let limit = page.limit;
        let mut items: Vec<&Batch> = match (&page.before_id, &page.after_id) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidRequest(
                    "before_id, after_id: only one of them may be given".into(),
                ));
            }
            (Some(before), None) => {
                let seq = cursor(before, "before_id")?;
                let mut v: Vec<&Batch> =
                    self.batches.range(seq + 1..).map(|(_, b)| b).take(limit + 1).collect();
                let more = v.len() > limit;
                v.truncate(limit);
                v.reverse();
                return Ok((v, more));
            }
            (None, Some(after)) => {
                let seq = cursor(after, "after_id")?;
                self.batches.range(..seq).rev().map(|(_, b)| b).take(limit + 1).collect()
            }
            (None, None) => self.batches.values().rev().take(limit + 1).collect(),
        };
        let more = items.len() > limit;
        items.truncate(limit);
        Ok((items, more))
    }

    pub fn live_batches(&self) -> usize {
        self.batches.len()
    }
}

/// Parsed list query.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    pub limit: usize,
    pub before_id: Option<String>,
    pub after_id: Option<String>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("No message batch found with id '{id}'"))
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
