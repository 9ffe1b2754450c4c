//! The state a file-based surface (OpenAI, Gemini) keeps beside the engine: its known
//! models, its batch registry and its file store, each behind its own lock. The locks are
//! never held together (handlers take one, copy what they need, release it, then take
//! the other).

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;

use super::Engine;
use super::registry::{Record, Registry};

/// One surface's state: batches of records `R` with metadata `M`, and a file store `F`.
#[derive(Debug)]
pub struct Surface<R, M, F> {
    engine: Arc<Engine>,
    /// Known model ids; any other fails its request as the provider would.
    pub models: HashSet<String>,
    batches: Mutex<Registry<R, M>>,
    files: Mutex<F>,
}

impl<R, M, F> Deref for Surface<R, M, F> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl<R: Record, M, F: Default> Surface<R, M, F> {
    /// `batch_id` makes the surface's batch ids from the seed and a sequence number.
    pub fn new(engine: Arc<Engine>, models: &[String], batch_id: fn(u64, u64) -> String) -> Self {
        let batches = Mutex::new(Registry::new(engine.lifecycle, batch_id));
        Surface {
            engine,
            models: models.iter().cloned().collect(),
            batches,
            files: Mutex::new(F::default()),
        }
    }

    /// The batches, brought up to the current simulated time.
    pub fn batches(&self) -> (MutexGuard<'_, Registry<R, M>>, Timestamp) {
        let mut reg = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        reg.advance(now);
        (reg, now)
    }

    pub fn files(&self) -> MutexGuard<'_, F> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Batches held (not deleted).
    pub fn live_batches(&self) -> usize {
        self.batches().0.live_batches()
    }
}
