//! Batches and their lifecycle in simulated time, for every surface. Nothing runs in the
//! background: every call first brings the registry up to "now" ([`Registry::advance`]),
//! which ends the batches whose end time has passed (in end-time order, so the shared
//! prompt cache sees the same sequence whatever the polling pattern) and archives those
//! past retention.
//!
//! Every call costs the same with 100,000 batches held as with 10: a batch is found by id
//! through a hash map to its sequence number, which indexes a vector directly (an ordered
//! map of 100,000 batches cost a dozen cache misses per lookup, 100x a lookup at 10
//! held); lists page through an ordered set of the sequence numbers held; `advance` reads
//! two ordered indexes (pending ends, pending archivals) from their front, never scanning.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;

use super::usage::{Breakpoint, Draws, PromptCache};

pub use super::batch::{
    Batch, Counts, EXPIRY, EndCause, Ended, Failure, Lifecycle, Outcome, RETENTION,
};

/// What the engine needs to know of one request a surface accepted.
pub trait Record {
    /// Cacheable prefixes of the prompt, in prompt order.
    fn breakpoints(&self) -> &[Breakpoint];
    /// The request itself is invalid: it ends as [`Failure::Request`].
    fn rejected(&self) -> bool;
}

/// Whether a valid request fails anyway, and how: internal (`errored_fraction`),
/// overloaded, or invalid, each an independent seeded draw checked in that order.
fn failure(draws: &Draws, index: u64, lc: &Lifecycle) -> Option<Failure> {
    let hit = |what: &str, share: f64| share > 0.0 && draws.draw(what, index) < share;
    if hit("errored", lc.errored_fraction) {
        Some(Failure::Internal)
    } else if hit("overloaded", lc.overloaded_fraction) {
        Some(Failure::Overloaded)
    } else if hit("invalid", lc.invalid_fraction) {
        Some(Failure::Invalid)
    } else {
        None
    }
}

/// What a results download needs, detached from the registry lock.
#[derive(Debug)]
pub struct ResultsSource<R> {
    pub batch_id: String,
    pub batch_seq: u64,
    pub records: Arc<Vec<R>>,
    pub outcomes: Arc<Vec<Outcome>>,
}

impl<R> Clone for ResultsSource<R> {
    fn clone(&self) -> Self {
        ResultsSource {
            batch_id: self.batch_id.clone(),
            batch_seq: self.batch_seq,
            records: self.records.clone(),
            outcomes: self.outcomes.clone(),
        }
    }
}

/// Why a registry call could not be answered; each surface words it in its own envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No batch with this id.
    NotFound,
    /// Results asked for before the end.
    NotEnded,
    /// Results asked for after archival.
    Archived,
    /// Delete asked for before the end.
    StillProcessing,
    /// A list cursor naming no batch ever created.
    BadCursor,
}

/// Which way a list page runs from its cursor.
#[derive(Debug, Clone, Default)]
pub enum Cursor {
    /// The newest batches.
    #[default]
    Newest,
    /// Batches older than this id (Anthropic `after_id`, OpenAI `after`).
    OlderThan(String),
    /// Batches newer than this id (Anthropic `before_id`).
    NewerThan(String),
}

/// One list page and whether more lie beyond it.
pub type Page<'a, R, M> = (Vec<&'a Batch<R, M>>, bool);

/// Every batch of one surface over the simulator's lifetime, and its prompt cache.
#[derive(Debug)]
pub struct Registry<R, M> {
    lc: Lifecycle,
    id_of: fn(u64, u64) -> String,
    /// Batch `seq` at index `seq - 1`; `None` once deleted.
    batches: Vec<Option<Batch<R, M>>>,
    /// Sequence numbers of the batches held, for paging in order.
    held: BTreeSet<u64>,
    by_id: HashMap<String, u64>,
    /// Deleted ids stay usable as list cursors.
    deleted: HashMap<String, u64>,
    /// (end time, seq) of every batch not yet ended.
    pending_ends: BTreeSet<(Timestamp, u64)>,
    /// (archive time, seq) of every batch whose records are still held.
    pending_archive: BTreeSet<(Timestamp, u64)>,
    next_seq: u64,
    cache: PromptCache,
}

impl<R: Record, M> Registry<R, M> {
    /// `id_of(seed, seq)` renders a batch id in the surface's format.
    pub fn new(lc: Lifecycle, id_of: fn(u64, u64) -> String) -> Self {
        Registry {
            lc,
            id_of,
            batches: Vec::new(),
            held: BTreeSet::new(),
            by_id: HashMap::new(),
            deleted: HashMap::new(),
            pending_ends: BTreeSet::new(),
            pending_archive: BTreeSet::new(),
            next_seq: 1,
            cache: PromptCache::default(),
        }
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lc
    }

    /// The sequence number and id the next create will get.
    pub fn next_id(&self) -> (u64, String) {
        (self.next_seq, (self.id_of)(self.lc.seed, self.next_seq))
    }

    pub fn create(&mut self, records: Vec<R>, meta: M, now: Timestamp) -> &Batch<R, M> {
        self.create_shared(Arc::new(records), meta, now)
    }

    /// Creates a batch over records another batch may share (OpenAI input files).
    pub fn create_shared(&mut self, records: Arc<Vec<R>>, meta: M, now: Timestamp) -> &Batch<R, M> {
        self.advance(now);
        let (seq, id) = self.next_id();
        self.next_seq += 1;
        let draws = Draws { seed: self.lc.seed, batch_seq: seq };
        let failing = records
            .iter()
            .enumerate()
            .filter(|(i, r)| r.rejected() || failure(&draws, *i as u64, &self.lc).is_some())
            .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let batch = Batch {
            seq,
            id: id.clone(),
            created_at: now,
            n: records.len() as u64,
            cancel_at: None,
            records: Some(records),
            ended: None,
            failing,
            meta,
        };
        self.pending_ends.insert((batch.end_time(&self.lc), seq));
        self.pending_archive.insert((batch.archive_at(), seq));
        self.by_id.insert(id, seq);
        self.held.insert(seq);
        debug_assert_eq!(self.batches.len() as u64, seq - 1);
        self.batches.push(Some(batch));
        self.batches.last().and_then(Option::as_ref).expect("just pushed")
    }

    fn at(&self, seq: u64) -> Option<&Batch<R, M>> {
        self.batches.get(usize::try_from(seq).ok()?.checked_sub(1)?)?.as_ref()
    }

    fn at_mut(&mut self, seq: u64) -> Option<&mut Batch<R, M>> {
        self.batches.get_mut(usize::try_from(seq).ok()?.checked_sub(1)?)?.as_mut()
    }

    /// Ends every batch whose end time is at or before `now`, oldest end first, and
    /// archives those past retention.
    pub fn advance(&mut self, now: Timestamp) {
        while let Some(&(end, seq)) = self.pending_ends.first() {
            if end > now {
                break;
            }
            self.pending_ends.pop_first();
            self.finish(seq, end);
        }
        while let Some(&(at, seq)) = self.pending_archive.first() {
            if at > now {
                break;
            }
            self.pending_archive.pop_first();
            if let Some(b) = self.at_mut(seq) {
                b.records = None;
                if let Some(e) = &mut b.ended {
                    e.outcomes = None;
                }
            }
        }
    }

    fn finish(&mut self, seq: u64, end: Timestamp) {
        let lc = self.lc;
        let Some(b) = self.batches.get_mut((seq - 1) as usize).and_then(Option::as_mut) else {
            return;
        };
        let draws = Draws { seed: lc.seed, batch_seq: seq };
        let unprocessed = match b.cancel_end(&lc) {
            Some(c) if c <= b.expires_at() => Outcome::Canceled,
            _ => Outcome::Expired,
        };
        let mut counts = Counts::default();
        let records = b.records.clone().unwrap_or_default();
        let mut outcomes = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let i = i as u64;
            let t = b.completion(i, &lc);
            let outcome = if t > end {
                unprocessed
            } else if r.rejected() {
                Outcome::Errored(Failure::Request)
            } else if let Some(f) = failure(&draws, i, &lc) {
                Outcome::Errored(f)
            } else {
                let u = self.cache.apply(r.breakpoints(), t);
                let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                Outcome::Succeeded {
                    read: n(u.read),
                    write_5m: n(u.write_5m),
                    write_1h: n(u.write_1h),
                }
            };
            match outcome {
                Outcome::Succeeded { .. } => counts.succeeded += 1,
                Outcome::Errored(_) => counts.errored += 1,
                Outcome::Canceled => counts.canceled += 1,
                Outcome::Expired => counts.expired += 1,
            }
            outcomes.push(outcome);
        }
        self.cache.prune(end);
        b.ended = Some(Ended { at: end, counts, outcomes: Some(Arc::new(outcomes)) });
    }

    pub fn get(&self, id: &str) -> Result<&Batch<R, M>, Refusal> {
        self.by_id.get(id).and_then(|&seq| self.at(seq)).ok_or(Refusal::NotFound)
    }

    /// Cancel: the batch keeps running until the in-flight requests are done. On an
    /// ended or already cancelling batch it changes nothing.
    pub fn cancel(&mut self, id: &str, now: Timestamp) -> Result<&Batch<R, M>, Refusal> {
        self.advance(now);
        let lc = self.lc;
        let seq = *self.by_id.get(id).ok_or(Refusal::NotFound)?;
        let b = self.batches.get_mut((seq - 1) as usize).and_then(Option::as_mut);
        let b = b.ok_or(Refusal::NotFound)?;
        if b.ended.is_none() && b.cancel_at.is_none() {
            self.pending_ends.remove(&(b.end_time(&lc), seq));
            b.cancel_at = Some(now);
            self.pending_ends.insert((b.end_time(&lc), seq));
        }
        self.advance(now);
        self.get(id)
    }

    /// Delete: only once processing has ended.
    pub fn delete(&mut self, id: &str) -> Result<Batch<R, M>, Refusal> {
        let b = self.get(id)?;
        if b.ended.is_none() {
            return Err(Refusal::StillProcessing);
        }
        let seq = b.seq;
        let archive = (b.archive_at(), seq);
        self.pending_archive.remove(&archive);
        self.by_id.remove(id);
        self.deleted.insert(id.to_string(), seq);
        self.held.remove(&seq);
        self.batches.get_mut((seq - 1) as usize).and_then(Option::take).ok_or(Refusal::NotFound)
    }

    pub fn results(&self, id: &str, now: Timestamp) -> Result<ResultsSource<R>, Refusal> {
        let b = self.get(id)?;
        let Some(ended) = &b.ended else { return Err(Refusal::NotEnded) };
        match (&b.records, &ended.outcomes) {
            (Some(records), Some(outcomes)) if now < b.archive_at() => Ok(ResultsSource {
                batch_id: b.id.clone(),
                batch_seq: b.seq,
                records: records.clone(),
                outcomes: outcomes.clone(),
            }),
            _ => Err(Refusal::Archived),
        }
    }

    /// One page, newest first, and whether more lie beyond it in its direction.
    pub fn list(&self, cursor: &Cursor, limit: usize) -> Result<Page<'_, R, M>, Refusal> {
        let seq_of = |id: &str| {
            self.by_id.get(id).or_else(|| self.deleted.get(id)).copied().ok_or(Refusal::BadCursor)
        };
        let mut items: Vec<&Batch<R, M>> = match cursor {
            Cursor::NewerThan(id) => {
                let seq = seq_of(id)?;
                let mut v: Vec<&Batch<R, M>> = self
                    .held
                    .range(seq + 1..)
                    .filter_map(|&s| self.at(s))
                    .take(limit + 1)
                    .collect();
                let more = v.len() > limit;
                v.truncate(limit);
                v.reverse();
                return Ok((v, more));
            }
            Cursor::OlderThan(id) => {
                let seq = seq_of(id)?;
                self.held.range(..seq).rev().filter_map(|&s| self.at(s)).take(limit + 1).collect()
            }
            Cursor::Newest => {
                self.held.iter().rev().filter_map(|&s| self.at(s)).take(limit + 1).collect()
            }
        };
        let more = items.len() > limit;
        items.truncate(limit);
        Ok((items, more))
    }

    pub fn live_batches(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::engine::time::secs;

    #[derive(Debug)]
    struct Rec(bool);

    impl Record for Rec {
        fn breakpoints(&self) -> &[Breakpoint] {
            &[]
        }
        fn rejected(&self) -> bool {
            self.0
        }
    }

    const LC: Lifecycle = Lifecycle {
        startup_secs: 60.0,
        requests_per_second: 10.0,
        cancel_grace_secs: 1.0,
        ..Lifecycle::DEFAULT
    };

    fn at(s: f64) -> Timestamp {
        let t0: Timestamp = "2026-01-10T08:00:00Z".parse().unwrap();
        t0.saturating_add(secs(s)).unwrap()
    }

    fn reg() -> Registry<Rec, ()> {
        Registry::new(LC, |_, seq| format!("b{seq}"))
    }

    #[test]
    fn progress_counts_completed_requests_and_their_failures_before_the_end() {
        let mut r = reg();
        let recs = (0..100).map(|i| Rec(i % 10 == 0)).collect();
        let id = r.create(recs, (), at(0.0)).id.clone();
        let b = r.get(&id).unwrap();
        assert_eq!(b.progress(at(59.0), &LC), Counts::default());
        let p = b.progress(at(62.05), &LC);
        assert_eq!((p.succeeded, p.errored), (18, 2));
        r.advance(at(70.0));
        let b = r.get(&id).unwrap();
        assert_eq!(b.end_cause(&LC), Some(EndCause::Completed));
        assert_eq!(
            b.ended.as_ref().unwrap().counts,
            Counts { succeeded: 90, errored: 10, ..Counts::default() }
        );
    }

    #[test]
    fn a_cancel_moves_the_end_in_the_index_and_names_the_cause() {
        let mut r = reg();
        let a = r.create((0..100).map(|_| Rec(false)).collect(), (), at(0.0)).id.clone();
        let b = r.create((0..10).map(|_| Rec(false)).collect(), (), at(0.0)).id.clone();
        r.cancel(&a, at(61.0)).unwrap();
        r.advance(at(62.0));
        assert_eq!(r.get(&a).unwrap().end_cause(&LC), Some(EndCause::Cancelled));
        assert!(r.get(&b).unwrap().is_ended());
        let c = r.create((0..10).map(|_| Rec(false)).collect(), (), at(62.0)).id.clone();
        r.advance(at(62.0 + 86_400.0));
        assert!(r.get(&c).unwrap().is_ended());
        assert_eq!(r.live_batches(), 3);
        r.delete(&a).unwrap();
        assert_eq!(r.get(&a).unwrap_err(), Refusal::NotFound);
        assert_eq!(r.list(&Cursor::OlderThan(a), 10).unwrap().0.len(), 0);
    }
}
