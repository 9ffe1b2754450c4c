//! Progress on stderr: on a terminal a status block redrawn in place with log lines
//! scrolling above it; otherwise plain log lines, and a progress line when something
//! changed (at most every `plain_every`). Hand-rolled ANSI (cursor up, clear to end):
//! three lines of status do not earn a progress-bar crate's compile time.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::state::{Outcome, Phase, State};

pub struct Log {
    live: bool,
    started: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    drawn: usize,
    block: Vec<String>,
    last_plain: Option<(Instant, String)>,
}

/// What the display shows, computed from the state.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub planned: usize,
    pub running: usize,
    pub done: usize,
    pub refused: usize,
    pub req_processing: u64,
    pub req_succeeded: u64,
    pub req_errored: u64,
    pub req_other: u64,
    pub items: usize,
    pub items_succeeded: usize,
    pub items_failed: usize,
    pub settled_batches: usize,
    pub cost_settled: crate::money::Money,
}

impl Snapshot {
    pub fn of(st: &State) -> Snapshot {
        let mut s = Snapshot { items: st.items.len(), ..Default::default() };
        for b in &st.batches {
            match b.phase {
                Phase::Planned | Phase::Creating => {
                    s.planned += 1;
                    s.req_processing += b.items.len() as u64;
                }
                Phase::Running | Phase::Collected => {
                    if b.phase == Phase::Running {
                        s.running += 1;
                    } else {
                        s.done += 1;
                    }
                    s.req_processing += b.counts.processing;
                    s.req_succeeded += b.counts.succeeded;
                    s.req_errored += b.counts.errored;
                    s.req_other += b.counts.canceled + b.counts.expired;
                }
                Phase::Refused => s.refused += 1,
            }
            if let Some(c) =
                b.cost_usd.as_deref().and_then(|c| crate::money::Money::parse_usd(c).ok())
            {
                s.settled_batches += 1;
                s.cost_settled += c;
            }
        }
        for it in &st.items {
            match it.outcome {
                Outcome::Succeeded => s.items_succeeded += 1,
                Outcome::Failed => s.items_failed += 1,
                _ => {}
            }
        }
        s
    }
}

fn hms(d: Duration) -> String {
    let t = d.as_secs();
    format!("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

fn n(v: impl Into<u64>) -> String {
    let s = v.into().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Log {
    /// Live when stderr is a terminal (and `TERM` is not `dumb`).
    pub fn new() -> Log {
        let live = std::io::stderr().is_terminal()
            && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true);
        Log {
            live,
            started: Instant::now(),
            inner: Mutex::new(Inner { drawn: 0, block: Vec::new(), last_plain: None }),
        }
    }

    /// A log line (above the live block, or plain).
    pub fn line(&self, text: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        if self.live {
            clear(&mut err, g.drawn);
            let _ = writeln!(err, "{text}");
            draw(&mut err, &g.block);
            g.drawn = g.block.len();
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    /// The status: redrawn in place, or a plain line when it changed.
    pub fn status(&self, s: &Snapshot) {
        let elapsed = self.started.elapsed();
        let total = s.req_processing + s.req_succeeded + s.req_errored + s.req_other;
        let finished = total - s.req_processing;
        let eta = if finished > 0 && s.req_processing > 0 {
            let secs = elapsed.as_secs_f64() * s.req_processing as f64 / finished as f64;
            hms(Duration::from_secs_f64(secs.min(1e7)))
        } else {
            "-".into()
        };
        let batches = format!(
            "{} to submit · {} running · {} ended · {} refused",
            s.planned, s.running, s.done, s.refused
        );
        let requests = format!(
            "{} processing · {} succeeded · {} errored · {} expired/canceled",
            n(s.req_processing),
            n(s.req_succeeded),
            n(s.req_errored),
            n(s.req_other)
        );
        let items = format!(
            "{} of {} succeeded · {} failed",
            n(s.items_succeeded as u64),
            n(s.items as u64),
            n(s.items_failed as u64)
        );
        let cost = format!(
            "cost settled ${} ({} batches)",
            s.cost_settled.usd_rounded(4),
            s.settled_batches
        );
        let block = vec![
            format!("batches   {batches}"),
            format!("requests  {requests}"),
            format!("items     {items}"),
            format!(
                "cost      ${} settled ({} batches) · elapsed {} · ETA {eta}",
                s.cost_settled.usd_rounded(4),
                s.settled_batches,
                hms(elapsed)
            ),
        ];
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        if self.live {
            clear(&mut err, g.drawn);
            draw(&mut err, &block);
            g.drawn = block.len();
            g.block = block;
        } else {
            let text =
                format!("progress: batches {batches}; requests {requests}; items {items}; {cost}")
                    .replace(" · ", ", ");
            let due = g
                .last_plain
                .as_ref()
                .is_none_or(|(t, prev)| *prev != text && t.elapsed() >= Duration::from_secs(2));
            if due {
                let _ = writeln!(err, "{text}; elapsed {}; ETA {eta}", hms(elapsed));
                g.last_plain = Some((Instant::now(), text));
            }
        }
        let _ = err.flush();
    }

    /// Leaves the last status on screen; later output goes below it.
    pub fn finish(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.drawn = 0;
        g.block.clear();
    }
}

impl Default for Log {
    fn default() -> Self {
        Log::new()
    }
}

/// The block with line wrapping off (DECAWM), so each line takes exactly one row however
/// narrow the terminal: moving back up over it stays right.
fn draw(w: &mut impl Write, block: &[String]) {
    let _ = write!(w, "\x1b[?7l");
    for l in block {
        let _ = writeln!(w, "{l}");
    }
    let _ = write!(w, "\x1b[?7h");
}

/// Moves up over the `lines` last drawn and clears from there down.
fn clear(w: &mut impl Write, lines: usize) {
    if lines > 0 {
        let _ = write!(w, "\x1b[{lines}F\x1b[J");
    }
}
