//! What a budget refusal tells the client: the worst case against the limit, spent and
//! reserved, when the window resets in the configured zone, and what would fit instead
//! (the `max_tokens` cap that would, or how many of the requests). No HTTP here: the
//! gateway puts the text in its 429 and the ledger keeps it with the refusal record.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::estimate::Estimate;
use crate::ledger::{Hold, WindowState};
use crate::money::Money;
use crate::pricing::PriceTable;

/// A fresh refusal id: `ref_` and 24 hex digits.
pub fn new_id() -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = Timestamp::now().as_nanosecond();
    let h = xxhash_rust::xxh3::xxh3_128(format!("ref/{t}/{n}/{}", std::process::id()).as_bytes());
    format!("ref_{:024x}", h & ((1u128 << 96) - 1))
}

/// `2026-03-11T00:00:00+09:00`: an instant in the zone, with its offset.
pub fn local_rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// `5h 03m`, `2d 4h`, `42s`.
fn human(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

fn usd(m: Money) -> String {
    format!("${}", m.usd_rounded(2))
}

/// The largest `max_tokens` that, set on every request, makes the batch's worst case fit
/// in `room`: the input side stays, the output side scales. Conservative: the input side
/// keeps every part of the worst case that is not output at list output price, and the
/// output is priced with the US uplift where a model has one.
pub fn max_tokens_that_fit(
    est: &Estimate,
    pricing: &PriceTable,
    at: Timestamp,
    room: Money,
) -> Option<u64> {
    let mut fixed = Money::ZERO;
    let mut per_token = Money::ZERO;
    for m in &est.models {
        let p = pricing.resolve(&m.model, at)?;
        let out = p.batch.output;
        fixed += m.worst.cost - out.times(m.output_tokens_worst);
        // Rounded up: the cap must never be one token too generous.
        let uplifted = match p.geo_us {
            Some(r) if r.den > 0 => {
                Money::from_picos((out.picos() * r.num + r.den - 1) / r.den).max(out)
            }
            _ => out,
        };
        per_token += uplifted.times(m.requests);
    }
    let left = room - fixed;
    if per_token.picos() <= 0 || left.picos() < per_token.picos() {
        return None;
    }
    u64::try_from(left.picos() / per_token.picos())
        .ok()
        .map(|n| n.min(crate::estimate::MAX_MAX_TOKENS))
}

/// The 429's message.
#[allow(clippy::too_many_arguments)]
pub fn budget_message(
    w: &WindowState,
    hold: &Hold,
    limit_kind: &str,
    est: Option<&Estimate>,
    pricing: &PriceTable,
    now: Timestamp,
    tz: &TimeZone,
    tz_name: &str,
) -> String {
    let resets = format!(
        "it resets at {} ({tz_name}, in {})",
        local_rfc3339(w.end, tz),
        human(w.end.duration_since(now).as_secs())
    );
    let requests = est.map_or(0, |e| e.requests);
    match limit_kind {
        "input_tokens" | "output_tokens" => {
            let (limit, spent, reserved, asked) = if limit_kind == "input_tokens" {
                (
                    w.limit_input_tokens,
                    w.spent_input_tokens,
                    w.reserved_input_tokens,
                    hold.input_tokens,
                )
            } else {
                (
                    w.limit_output_tokens,
                    w.spent_output_tokens,
                    w.reserved_output_tokens,
                    hold.output_tokens,
                )
            };
            let limit = limit.unwrap_or(0);
            let room = limit.saturating_sub(spent + reserved);
            let kind = limit_kind.replace('_', " ");
            let fix = if limit_kind == "output_tokens" && requests > 0 && room / requests >= 1 {
                format!("; it would fit with max_tokens <= {} on every request", room / requests)
            } else if asked > 0 && requests > 0 {
                let fit = (u128::from(room) * u128::from(requests) / u128::from(asked)) as u64;
                format!("; at most about {fit} of its {requests} requests would fit now")
            } else {
                String::new()
            };
            format!(
                "batch would exceed budget '{}' ({}, {kind}): worst case {asked} {kind}, limit {limit}, \
                 spent {spent}, reserved by batches in flight {reserved}, room left {room}; {resets}{fix}",
                w.budget,
                w.period.as_str()
            )
        }
        _ => {
            let limit = w.limit.unwrap_or(Money::ZERO);
            let room = limit - w.spent - w.reserved;
            let fix = match est.and_then(|e| max_tokens_that_fit(e, pricing, now, room)) {
                Some(n) => format!("; it would fit with max_tokens <= {n} on every request"),
                None if requests > 0 && hold.usd.picos() > 0 && room.picos() > 0 => {
                    let fit = (room.picos() * i128::from(requests) / hold.usd.picos()) as u64;
                    format!(
                        "; no max_tokens makes it fit: at most about {fit} of its {requests} requests would fit now"
                    )
                }
                None => "; nothing fits until the window resets or batches in flight settle".into(),
            };
            format!(
                "batch would exceed budget '{}' ({}): worst case {}, limit {}, spent {}, reserved by \
                 batches in flight {}, room left {}; {resets}{fix}",
                w.budget,
                w.period.as_str(),
                usd(hold.usd),
                usd(limit),
                usd(w.spent),
                usd(w.reserved),
                usd(room)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(human(42), "42s");
        assert_eq!(human(3 * 3600 + 5 * 60), "3h 05m");
        assert_eq!(human(2 * 86_400 + 4 * 3600), "2d 4h");
    }

    #[test]
    fn local_times_carry_the_offset() {
        let tz = TimeZone::get("Asia/Seoul").unwrap();
        let t: Timestamp = "2026-03-10T15:00:00Z".parse().unwrap();
        assert_eq!(local_rfc3339(t, &tz), "2026-03-11T00:00:00+09:00");
    }
}
