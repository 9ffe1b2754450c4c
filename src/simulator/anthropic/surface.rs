//! The Anthropic surface's shared state, a leaf the router, middleware and handlers all
//! import.

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use super::state;
use crate::simulator::engine::Engine;

/// The Anthropic surface's state: the shared engine and its own batches.
#[derive(Debug)]
pub struct Surface {
    engine: Arc<Engine>,
    /// Known model ids; any other is a `not_found_error` result line.
    pub(super) models: Arc<HashSet<String>>,
    registry: Mutex<state::Registry>,
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
        let registry = Mutex::new(state::Registry::new(engine.lifecycle));
        Surface { engine, models: Arc::new(models.iter().cloned().collect()), registry }
    }

    /// The registry, brought up to the current simulated time.
    pub(super) fn registry(&self) -> (MutexGuard<'_, state::Registry>, jiff::Timestamp) {
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        reg.advance(now);
        (reg, now)
    }

    /// Batches held (not deleted).
    pub fn live_batches(&self) -> usize {
        self.registry().0.live_batches()
    }
}
