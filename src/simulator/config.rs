//! `SimConfig`: everything that shapes a simulator run, checked once before it starts.

use std::fmt;

use super::engine::EngineSettings;
use super::engine::faults::Faults;
use super::engine::registry::Lifecycle;
use super::engine::time::BaseClock;
use super::engine::usage::OutputShape;

/// Everything that shapes a simulator run.
#[derive(Clone)]
pub struct SimConfig {
    /// The one key accepted (`x-api-key`, `Authorization: Bearer`, `x-goog-api-key` or
    /// `?key=`, as each provider's clients send it).
    pub api_key: String,
    /// Simulated seconds per real second; 0 freezes time (only `/_sim/advance` moves it).
    pub time_scale: f64,
    /// Seeds ids, outcomes, usage and fault draws.
    pub seed: u64,
    /// Requests each batch completes per simulated second.
    pub requests_per_second: f64,
    /// Simulated seconds before a batch's first request completes.
    pub startup_secs: f64,
    /// Simulated seconds from cancel to end; requests completing within it succeed.
    pub cancel_grace_secs: f64,
    /// Share of valid requests that fail with an internal error (Anthropic `api_error`).
    pub errored_fraction: f64,
    /// Share of valid requests that fail as overloaded (retryable).
    pub overloaded_fraction: f64,
    /// Share of valid requests that fail as invalid (not retryable).
    pub invalid_fraction: f64,
    /// How output lengths vary.
    pub output: OutputShape,
    /// OpenAI `request_counts` and Gemini `batchStats` move as requests complete rather
    /// than all at once at the end (the references leave it UNCONFIRMED).
    pub progressive_counts: bool,
    /// Simulated seconds an OpenAI batch stays `validating` (capped by `startup_secs`).
    pub validating_secs: f64,
    /// Simulated seconds an OpenAI batch stays `finalizing` after its last request.
    pub finalizing_secs: f64,
    pub faults: Faults,
    /// Base of `results_url`; default `http://` + the bound address.
    pub public_base_url: Option<String>,
    /// Known Anthropic model ids.
    pub models: Vec<String>,
    /// Known OpenAI model ids.
    pub openai_models: Vec<String>,
    /// Known Gemini model ids (without `models/`).
    pub gemini_models: Vec<String>,
    /// The clock simulated time is derived from.
    pub clock: BaseClock,
}

impl Default for SimConfig {
    fn default() -> Self {
        let lc = Lifecycle::DEFAULT;
        SimConfig {
            api_key: "sim-key".into(),
            time_scale: 1.0,
            seed: lc.seed,
            requests_per_second: lc.requests_per_second,
            startup_secs: lc.startup_secs,
            cancel_grace_secs: lc.cancel_grace_secs,
            errored_fraction: lc.errored_fraction,
            overloaded_fraction: lc.overloaded_fraction,
            invalid_fraction: lc.invalid_fraction,
            output: OutputShape::default(),
            progressive_counts: false,
            validating_secs: 2.0,
            finalizing_secs: 5.0,
            faults: Faults::default(),
            public_base_url: None,
            models: super::anthropic::MODELS.iter().map(|m| m.to_string()).collect(),
            openai_models: super::openai::MODELS.iter().map(|m| m.to_string()).collect(),
            gemini_models: super::gemini::MODELS.iter().map(|m| m.to_string()).collect(),
            clock: BaseClock::default(),
        }
    }
}

/// The key never appears in logs or panics.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("api_key", &"<redacted>")
            .field("time_scale", &self.time_scale)
            .field("seed", &self.seed)
            .field("requests_per_second", &self.requests_per_second)
            .field("startup_secs", &self.startup_secs)
            .field("cancel_grace_secs", &self.cancel_grace_secs)
            .field("errored_fraction", &self.errored_fraction)
            .field("overloaded_fraction", &self.overloaded_fraction)
            .field("invalid_fraction", &self.invalid_fraction)
            .field("output", &self.output)
            .field("progressive_counts", &self.progressive_counts)
            .field("faults", &self.faults)
            .field("public_base_url", &self.public_base_url)
            .field("models", &self.models.len())
            .finish()
    }
}

impl SimConfig {
    /// Checks ranges; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.api_key.trim().is_empty() {
            return Err("api_key: must not be empty".into());
        }
        let non_negative = [
            ("time_scale", self.time_scale),
            ("startup_secs", self.startup_secs),
            ("cancel_grace_secs", self.cancel_grace_secs),
            ("validating_secs", self.validating_secs),
            ("finalizing_secs", self.finalizing_secs),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name}: expected a non-negative number, got {v}"));
            }
        }
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return Err(format!(
                "requests_per_second: expected a positive number, got {}",
                self.requests_per_second
            ));
        }
        let shares = [
            ("errored_fraction", self.errored_fraction),
            ("overloaded_fraction", self.overloaded_fraction),
            ("invalid_fraction", self.invalid_fraction),
        ];
        for (name, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name}: expected a share between 0 and 1, got {v}"));
            }
        }
        self.output.validate()?;
        self.faults.validate()
    }

    /// The engine's share of the settings.
    pub(crate) fn engine_settings(&self, base_url: String) -> EngineSettings {
        EngineSettings {
            seed: self.seed,
            api_key: self.api_key.clone(),
            base_url,
            clock: self.clock.clone(),
            time_scale: self.time_scale,
            faults: self.faults.clone(),
            lifecycle: Lifecycle {
                seed: self.seed,
                startup_secs: self.startup_secs,
                requests_per_second: self.requests_per_second,
                cancel_grace_secs: self.cancel_grace_secs,
                errored_fraction: self.errored_fraction,
                overloaded_fraction: self.overloaded_fraction,
                invalid_fraction: self.invalid_fraction,
            },
            output: self.output,
            progressive_counts: self.progressive_counts,
            validating_secs: self.validating_secs.min(self.startup_secs),
            finalizing_secs: self.finalizing_secs,
        }
    }
}
