//! The context every visitor of one walk shares: where the walk is, and the first typed
//! problem found (serde errors only carry strings). A leaf: the visitors of every section
//! import it, it imports none of them.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de;

use crate::estimate::{EstimateError, Problem, RequestAt};

/// Shared by the visitors of one walk: where we are, and the first typed problem found.
pub struct Ctx {
    pub(super) at: Cell<RequestAt>,
    /// Set while inside a request, so syntax errors there name it too.
    pub(super) in_request: Cell<bool>,
    problem: RefCell<Option<EstimateError>>,
}

impl Ctx {
    pub fn new(line: Option<u64>) -> Ctx {
        Ctx {
            at: Cell::new(RequestAt { index: 0, line }),
            in_request: Cell::new(line.is_some()),
            problem: RefCell::new(None),
        }
    }

    /// Records a problem at `path` in the current request; the returned serde error only
    /// unwinds the visitors.
    pub fn fail<E: de::Error>(&self, path: &dyn fmt::Display, problem: Problem) -> E {
        let field = path.to_string();
        self.raise(EstimateError::Request { at: self.at.get(), field, problem })
    }

    pub fn raise<E: de::Error>(&self, err: EstimateError) -> E {
        let mut slot = self.problem.borrow_mut();
        if slot.is_none() {
            *slot = Some(err);
        }
        E::custom("see Ctx")
    }

    /// The typed problem if a visitor raised one, else the syntax error with its position
    /// (`line_offset` turns a JSONL line's line 1 into the file's line).
    pub fn error(&self, e: serde_json::Error, line_offset: u64) -> EstimateError {
        if let Some(p) = self.problem.borrow_mut().take() {
            return p;
        }
        let text = e.to_string();
        let reason = text.rsplit_once(" at line ").map_or(text.as_str(), |(r, _)| r).to_string();
        EstimateError::Syntax {
            at: self.in_request.get().then(|| self.at.get()),
            line: e.line() as u64 + line_offset,
            column: e.column() as u64,
            reason,
        }
    }
}
