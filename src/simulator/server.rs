//! The whole simulator's state: one engine and one surface per provider. (The router that
//! composes the surfaces and the control routes is built in `simulator::spawn`.)

use std::sync::Arc;

use super::SimConfig;
use super::anthropic;
use super::engine::Engine;
use super::engine::stats::SimStats;
use super::gemini;
use super::openai;

/// The engine and every surface on it.
#[derive(Debug)]
pub struct Sim {
    pub engine: Arc<Engine>,
    pub anthropic: Arc<anthropic::Surface>,
    pub openai: Arc<openai::Surface>,
    pub gemini: Arc<gemini::Surface>,
}

impl Sim {
    pub fn new(config: &SimConfig, base_url: String) -> Self {
        let engine = Arc::new(Engine::new(config.engine_settings(base_url)));
        let anthropic = Arc::new(anthropic::Surface::new(engine.clone(), &config.models));
        let openai = Arc::new(openai::new_surface(engine.clone(), &config.openai_models));
        let gemini = Arc::new(gemini::new_surface(engine.clone(), &config.gemini_models));
        Sim { engine, anthropic, openai, gemini }
    }

    /// Batches held by every surface.
    pub fn live_batches(&self) -> u64 {
        let n =
            self.anthropic.live_batches() + self.openai.live_batches() + self.gemini.live_batches();
        n as u64
    }

    pub fn stats(&self) -> SimStats {
        self.engine.stats.snapshot(self.live_batches())
    }
}
