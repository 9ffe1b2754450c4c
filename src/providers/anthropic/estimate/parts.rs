//! The walk in parts: a large body on several threads at once ([`estimate_parallel`]),
//! and a body still arriving, piece by piece as it comes ([`HeadWalk`]). Both fold the
//! requests in body order, so the estimate is the serial walk's to the byte; both step
//! aside (`None`) at anything unusual and leave the body to the serial walk, which words
//! every error (`split.rs` says why a cut is safe).

use std::sync::atomic::{AtomicBool, Ordering};

use super::split::{self, Parsed};
use super::{add, estimate_bytes, flatten, parse, view};
use crate::estimate::fold::{self, Folder};
use crate::estimate::{
    BodyFormat, Estimate, EstimateError, EstimateOptions, MAX_REQUESTS, Mark, RequestAt,
};
use crate::pricing::PriceTable;

/// The estimate of a plain JSON body walked on `threads` threads, or `None` when the body
/// is not in the plain shape or has a problem: then the serial walk decides (and words
/// any error). Part 0 is folded as it is parsed; the other parts' requests are kept,
/// reduced, until their turn.
pub(super) fn estimate_parallel(
    body: &[u8],
    table: &PriceTable,
    opts: &EstimateOptions,
    threads: usize,
) -> Option<Estimate> {
    if threads < 2 {
        return None;
    }
    let body = body.strip_prefix(BOM).unwrap_or(body);
    let cuts = split::cut(body, threads)?;
    if cuts.parts() < 2 {
        return None;
    }
    fold_parts(body, &cuts, 0, Folding::new(table, opts))
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Threads a walk in parts uses: every core, up to 8.
pub(super) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// Requests folded in body order, counted.
struct Folding<'t> {
    folder: Folder<'t>,
    index: u64,
    marks: Vec<Mark>,
}

impl<'t> Folding<'t> {
    fn new(table: &'t PriceTable, opts: &EstimateOptions) -> Self {
        let mut folder = Folder::new(table, opts.at, opts.expected_output_fraction);
        folder.provider = opts.provider;
        Folding { folder, index: 0, marks: Vec::new() }
    }

    /// Folds the next request; `None` if it is refused or one too many.
    fn one(&mut self, p: &fold::Request<'_>) -> Option<()> {
        let at = RequestAt { index: self.index, line: None };
        self.index += 1;
        (self.index <= MAX_REQUESTS).then(|| add(&mut self.folder, at, p).ok()).flatten()
    }

    /// Parses and folds the next request.
    fn parsed(&mut self, req: &parse::Request<'_>) -> Option<()> {
        let mut marks = std::mem::take(&mut self.marks);
        flatten(&req.params.prompt, &mut marks);
        let out = self.one(&view(req, &marks));
        self.marks = marks;
        out
    }
}

/// Folds parts `from..` of `body` after what `folding` holds: part `from` on this thread
/// as it is parsed, the later ones parsed on threads of their own meanwhile and folded
/// in turn. `None` at the first element that does not parse or fold.
fn fold_parts(
    body: &[u8],
    cuts: &split::Cuts,
    from: usize,
    mut folding: Folding<'_>,
) -> Option<Estimate> {
    let failed = AtomicBool::new(false);
    let failed = &failed;
    let ok = std::thread::scope(|s| {
        let rest: Vec<_> = (from + 1..cuts.parts())
            .map(|k| {
                s.spawn(move || {
                    let mut parsed = Vec::new();
                    let done = cuts.walk(body, k, |req| {
                        parsed.push(Parsed::of(req));
                        (!failed.load(Ordering::Relaxed)).then_some(())
                    });
                    if done.is_none() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    done.map(|()| parsed)
                })
            })
            .collect();
        let mine = cuts.walk(body, from, |req| {
            (!failed.load(Ordering::Relaxed)).then_some(())?;
            folding.parsed(&req)
        });
        if mine.is_none() {
            failed.store(true, Ordering::Relaxed);
        }
        let mut ok = mine.is_some();
        for part in rest {
            match part.join() {
                Ok(Some(parsed)) if ok => {
                    ok = parsed.iter().all(|p| folding.one(&p.as_request()).is_some());
                }
                _ => ok = false,
            }
        }
        ok
    });
    ok.then(|| folding.folder.finish(BodyFormat::Json))
}

/// The requests of a body still arriving, walked and folded piece by piece: when the
/// last byte is in, only the part after the last element start seen is left to walk
/// ([`estimate_after_head`]).
pub struct HeadWalk<'t> {
    state: Walk<'t>,
    table: &'t PriceTable,
    opts: EstimateOptions,
}

enum Walk<'t> {
    /// No element start after the first seen yet, up to `scanned`.
    Opening { scanned: usize },
    /// The elements before `end` are folded.
    Walking { folding: Box<Folding<'t>>, first: usize, end: usize },
    /// Not the plain shape, or a problem: the whole body is estimated as if this had not
    /// run (and its error, if any, worded by the serial walk).
    Declined,
}

/// What [`HeadWalk::done`] hands to [`estimate_after_head`].
pub struct Walked<'t> {
    folding: Folding<'t>,
    cut: (usize, usize),
}

impl<'t> HeadWalk<'t> {
    pub fn new(table: &'t PriceTable, opts: &EstimateOptions) -> Self {
        let usable = (0.0..=1.0).contains(&opts.expected_output_fraction);
        let state = if usable { Walk::Opening { scanned: 0 } } else { Walk::Declined };
        HeadWalk { state, table, opts: *opts }
    }

    /// Walks what `head` (the body so far) holds past the last call.
    pub fn more(&mut self, head: &[u8]) {
        let head = head.strip_prefix(BOM).unwrap_or(head);
        self.state = match std::mem::replace(&mut self.state, Walk::Declined) {
            Walk::Declined => Walk::Declined,
            Walk::Opening { scanned } => match split::first_element(head) {
                // The opening has arrived and is not the plain shape.
                None if head.len() >= 64 * 1024 => Walk::Declined,
                None => Walk::Opening { scanned },
                Some(first) => match split::last_start(head, scanned.max(first + 1)) {
                    None => Walk::Opening { scanned: head.len().saturating_sub(NEEDLE_LEN) },
                    Some(end) => {
                        let folding = Box::new(Folding::new(self.table, &self.opts));
                        walk_part(head, folding, first, first, end)
                    }
                },
            },
            Walk::Walking { folding, first, end } => match split::last_start(head, end + 1) {
                None => Walk::Walking { folding, first, end },
                Some(next) => walk_part(head, folding, first, end, next),
            },
        };
    }

    /// What was walked, if the walk is still on.
    pub fn done(self) -> Option<Walked<'t>> {
        match self.state {
            Walk::Walking { folding, first, end } => {
                Some(Walked { folding: *folding, cut: (first, end) })
            }
            _ => None,
        }
    }
}

/// Bytes of `{"custom_id"`: a start may straddle what has arrived.
const NEEDLE_LEN: usize = 12;

/// Folds the elements of `head` from `start` to the one at `end`.
fn walk_part<'t>(
    head: &[u8],
    mut folding: Box<Folding<'t>>,
    first: usize,
    start: usize,
    end: usize,
) -> Walk<'t> {
    match split::part((start, end)).walk(head, 0, |req| folding.parsed(&req)) {
        Some(()) => Walk::Walking { folding, first, end },
        None => Walk::Declined,
    }
}

/// [`estimate_bytes`] of `body`, going on from what a [`HeadWalk`] folded as it arrived:
/// the same estimate to the byte, in the time the part after the walk takes.
pub fn estimate_after_head(
    body: &[u8],
    walked: Option<Walked<'_>>,
    table: &PriceTable,
    opts: &EstimateOptions,
) -> Result<Estimate, EstimateError> {
    if let Some(w) = walked {
        let plain = body.strip_prefix(BOM).unwrap_or(body);
        let est = split::cut_after(plain, w.cut, threads())
            .and_then(|cuts| fold_parts(plain, &cuts, 1, w.folding));
        if let Some(est) = est {
            return Ok(est);
        }
    }
    estimate_bytes(body, table, opts)
}
