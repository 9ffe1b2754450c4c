//! Simulated time: a clock running `time_scale` times faster than its base clock from the
//! moment the simulator starts, plus manual jumps. Batch timestamps and the whole lifecycle
//! are read from it, so a day of batch life passes in seconds, or only when a test says.

use std::fmt;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

use crate::clock::{Clock, SystemClock};

/// The base clock the simulated one is derived from (the system clock unless a test
/// injects a [`crate::clock::ManualClock`]).
#[derive(Clone)]
pub struct BaseClock(pub Arc<dyn Clock>);

impl Default for BaseClock {
    fn default() -> Self {
        BaseClock(Arc::new(SystemClock))
    }
}

impl fmt::Debug for BaseClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BaseClock(..)")
    }
}

/// `sim_now = start + (base_now - base_start) * scale + jumps`, truncated to microseconds
/// because the API prints microseconds.
#[derive(Debug)]
pub struct SimClock {
    base: BaseClock,
    base_start: Timestamp,
    scale: f64,
    jumps: Mutex<SignedDuration>,
}

impl SimClock {
    pub fn new(base: BaseClock, scale: f64) -> Self {
        let base_start = base.0.now();
        SimClock { base, base_start, scale, jumps: Mutex::new(SignedDuration::ZERO) }
    }

    pub fn now(&self) -> Timestamp {
        let real = self.base.0.now().duration_since(self.base_start);
        let scaled = SignedDuration::try_from_secs_f64(real.as_secs_f64() * self.scale)
            .unwrap_or(SignedDuration::MAX);
        let jumps = *self.jumps.lock().unwrap_or_else(|e| e.into_inner());
        let t = self.base_start.saturating_add(scaled).and_then(|t| t.saturating_add(jumps));
        truncate_micros(t.unwrap_or(self.base_start))
    }

    /// Moves simulated time forward (never back: the lifecycle assumes it only grows).
    pub fn advance(&self, by: SignedDuration) {
        if by.is_positive() {
            let mut jumps = self.jumps.lock().unwrap_or_else(|e| e.into_inner());
            *jumps = jumps.saturating_add(by);
        }
    }
}

pub fn truncate_micros(t: Timestamp) -> Timestamp {
    let micros = t.as_microsecond();
    Timestamp::from_microsecond(micros).unwrap_or(t)
}

/// Seconds (fractional) as a duration, saturating.
pub fn secs(s: f64) -> SignedDuration {
    SignedDuration::try_from_secs_f64(s).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn simulated_time_runs_scale_times_faster_and_jumps_forward_only() {
        let start: Timestamp = "2026-01-10T08:00:00Z".parse().unwrap();
        let base = Arc::new(ManualClock::new(start));
        let sim = SimClock::new(BaseClock(base.clone()), 3600.0);
        assert_eq!(sim.now(), start);
        base.advance(SignedDuration::from_secs(1));
        assert_eq!(sim.now(), "2026-01-10T09:00:00Z".parse::<Timestamp>().unwrap());
        sim.advance(SignedDuration::from_secs(60));
        sim.advance(SignedDuration::from_secs(-600));
        assert_eq!(sim.now(), "2026-01-10T09:01:00Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn scale_zero_freezes_time() {
        let start: Timestamp = "2026-01-10T08:00:00.123456789Z".parse().unwrap();
        let base = Arc::new(ManualClock::new(start));
        let sim = SimClock::new(BaseClock(base.clone()), 0.0);
        base.advance(SignedDuration::from_hours(5));
        assert_eq!(sim.now().to_string(), "2026-01-10T08:00:00.123456Z");
    }
}
