//! Calibrated holds. A worst-case hold prices every request at `max_tokens` and never
//! overshoots, but batches settle at a fraction of it. A budget with `hold = "calibrated"`
//! holds instead what this project's settled batches of the same model suggest: per
//! model, the input-side worst case times a high quantile of (actual input / estimated
//! input bound), plus the output worst case times a high quantile of (actual output /
//! `max_tokens`), each with a safety margin and never above the worst case. Until a model
//! has [`MIN_SAMPLES`] settled batches the worst case is held.
//!
//! What it risks is bounded and reported: a batch can never cost more than its worst case,
//! so a window can overshoot its limit by at most the sum, over batches it holds, of
//! worst case minus hold (`possible_overshoot_usd`).

use jiff::Timestamp;

use crate::app::App;
use crate::config::HoldPolicy;
use crate::estimate::Estimate;
use crate::ledger::workflow::{CalibrationSample, ModelBound};
use crate::ledger::{Hold, LedgerError, WindowRef};
use crate::money::Money;
use crate::pricing::TokenUsage;

/// Settled batches a model needs before its holds are calibrated.
pub const MIN_SAMPLES: usize = 5;
/// Newest settled batches the quantile is taken over.
pub const MAX_SAMPLES: u32 = 200;
/// The quantile of the observed ratios.
pub const QUANTILE: f64 = 0.95;
/// Safety margin on the quantile (25 % above it).
pub const MARGIN_PPM: u64 = 1_250_000;

/// Fractions of the worst case to hold, in parts per million (1,000,000 = worst case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Factors {
    pub input_ppm: u64,
    pub output_ppm: u64,
}

impl Factors {
    pub const WORST: Factors = Factors { input_ppm: 1_000_000, output_ppm: 1_000_000 };
}

/// The nearest-rank quantile of `ratios` (ppm), times the margin, capped at the worst case.
fn factor(mut ratios: Vec<u64>) -> u64 {
    ratios.sort_unstable();
    let rank = ((QUANTILE * ratios.len() as f64).ceil() as usize).clamp(1, ratios.len());
    let q = ratios[rank - 1];
    (q.saturating_mul(MARGIN_PPM) / 1_000_000).min(1_000_000)
}

fn ppm(actual: u64, bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    ((u128::from(actual) * 1_000_000).div_ceil(u128::from(bound))).min(u128::from(u64::MAX)) as u64
}

/// Factors learned from `samples`, or the worst case when there are too few.
pub fn learn(samples: &[CalibrationSample]) -> Factors {
    if samples.len() < MIN_SAMPLES {
        return Factors::WORST;
    }
    Factors {
        input_ppm: factor(samples.iter().map(|s| ppm(s.input_actual, s.input_upper)).collect()),
        output_ppm: factor(samples.iter().map(|s| ppm(s.output_actual, s.output_worst)).collect()),
    }
}

fn scale(m: Money, ppm: u64) -> Money {
    // Rounded up: a calibrated hold is never a pico-dollar short of its own formula.
    Money::from_picos((m.picos() * i128::from(ppm) + 999_999).div_euclid(1_000_000))
}

/// Per model: its bounds, the output share of its worst case priced from the table.
pub fn bounds(app: &App, provider: &str, est: &Estimate, at: Timestamp) -> Vec<ModelBound> {
    est.models
        .iter()
        .map(|m| {
            let out_only = TokenUsage { output: m.output_tokens_worst, ..Default::default() };
            let worst_output = app
                .pricing
                .resolve_for(provider, &m.model, at)
                .map(|p| p.cost(&out_only).cost)
                .unwrap_or(m.worst.cost)
                .min(m.worst.cost);
            ModelBound {
                model: m.model.clone(),
                input_upper: m.input_tokens_upper,
                output_worst: m.output_tokens_worst,
                worst: m.worst.cost,
                worst_output,
            }
        })
        .collect()
}

/// The calibrated USD hold of each model's share of a submission.
pub async fn calibrated(
    app: &App,
    project: &str,
    bounds: &[ModelBound],
) -> Result<Vec<(String, Money)>, LedgerError> {
    let mut out = Vec::with_capacity(bounds.len());
    for b in bounds {
        let samples = app.ledger.calibration_samples(project, &b.model, MAX_SAMPLES).await?;
        let f = learn(&samples);
        let input_side = b.worst - b.worst_output;
        let held = scale(input_side, f.input_ppm) + scale(b.worst_output, f.output_ppm);
        out.push((b.model.clone(), held.min(b.worst)));
    }
    Ok(out)
}

/// Sets the USD hold of every window whose budget is calibrated: the calibrated holds of
/// the models the budget counts (all, or its `models` filter's). Token holds stay at the
/// worst case (token limits are rare and cheap to hold exactly). A ledger that cannot
/// learn leaves the worst case in place.
pub async fn apply(
    app: &App,
    project: &str,
    provider: &str,
    bounds: &[ModelBound],
    worst: Hold,
    windows: &mut [WindowRef],
    now: Timestamp,
) {
    let budget = |w: &WindowRef| {
        app.settings
            .budgets
            .iter()
            .find(|b| b.name == w.budget && b.policy.hold == HoldPolicy::Calibrated)
    };
    if !windows.iter().any(|w| budget(w).is_some()) {
        return;
    }
    let held = match calibrated(app, project, bounds).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "calibration unavailable; holding the worst case");
            return;
        }
    };
    for w in windows.iter_mut() {
        let Some(b) = budget(w) else { continue };
        let selected = crate::budgets::selected_models(b, &app.pricing, provider, now);
        let counted = |model: &String| selected.as_ref().is_none_or(|ms| ms.contains(model));
        let usd = held.iter().filter(|(m, _)| counted(m)).map(|(_, h)| *h).sum::<Money>();
        let base = w.hold.unwrap_or(worst);
        w.hold = Some(Hold { usd: usd.min(base.usd), ..base });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(out_actual: u64) -> CalibrationSample {
        CalibrationSample {
            input_upper: 100,
            output_worst: 1000,
            input_actual: 90,
            output_actual: out_actual,
        }
    }

    #[test]
    fn worst_case_until_enough_batches_settled() {
        let few: Vec<_> = (0..4).map(|_| sample(300)).collect();
        assert_eq!(learn(&few), Factors::WORST);
    }

    #[test]
    fn a_high_quantile_with_margin_capped_at_the_worst_case() {
        // Twenty batches at 10 %, 20 %, ..., the 95th percentile is the 19th: 0.19 x 1.25.
        let s: Vec<_> = (1..=20).map(|i| sample(i * 10)).collect();
        let f = learn(&s);
        assert_eq!(f.output_ppm, 237_500);
        assert_eq!(f.input_ppm, 1_000_000, "0.9 x 1.25 is capped at the worst case");
        assert_eq!(scale(Money::from_usd(10), f.output_ppm), Money::parse_usd("2.375").unwrap());
        assert_eq!(scale(Money::from_picos(3), 500_000), Money::from_picos(2), "rounded up");
    }
}
