//! Webhook bodies: Slack's `{"text": ...}` (which most chat tools accept too), or a
//! generic JSON event signed with HMAC-SHA256 so the receiver can tell it came from us.

use jiff::Timestamp;
use ring::hmac;
use serde_json::json;

use crate::ledger::workflow::Notification;

/// Header carrying `sha256=HEX` of HMAC-SHA256(secret, "{timestamp}.{body}").
pub const SIGNATURE_HEADER: &str = "x-batchcost-signature";
/// Header carrying the unix seconds that were signed (receivers reject stale ones).
pub const TIMESTAMP_HEADER: &str = "x-batchcost-timestamp";
/// Header naming the outbox row: a receiver that saw it already can drop a repeat (a
/// delivery whose 2xx got lost is sent again).
pub const DELIVERY_HEADER: &str = "x-batchcost-delivery";

/// A stable id of the crossing: budget, project, window start and threshold.
pub fn delivery_id(n: &Notification) -> String {
    format!(
        "{}/{}/{}/{}",
        n.budget,
        n.project,
        crate::clock::rfc3339_micros(n.window_start),
        n.threshold
    )
}

fn percent(threshold: &str) -> String {
    match threshold.parse::<f64>() {
        Ok(f) => format!("{}%", (f * 10_000.0).round() / 100.0),
        Err(_) => threshold.to_string(),
    }
}

/// Slack incoming-webhook body.
pub fn slack(n: &Notification) -> Vec<u8> {
    let text = format!(
        ":warning: Budget *{}* (project `{}`) crossed {} of its ${} {} limit: ${} committed \
         (settled + held) in the window {} to {}.",
        n.budget,
        n.project,
        percent(&n.threshold),
        n.limit.usd_exact(),
        n.period,
        n.used.usd_exact(),
        crate::clock::rfc3339_micros(n.window_start),
        crate::clock::rfc3339_micros(n.window_end),
    );
    serde_json::to_vec(&json!({ "text": text })).unwrap_or_default()
}

/// Generic JSON event.
pub fn event(n: &Notification) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "budget.threshold_crossed",
        "id": delivery_id(n),
        "budget": n.budget,
        "project": n.project,
        "period": n.period,
        "threshold": n.threshold.parse::<f64>().ok(),
        "window_start": crate::clock::rfc3339_micros(n.window_start),
        "window_end": crate::clock::rfc3339_micros(n.window_end),
        "limit_usd": n.limit.usd_exact(),
        "used_usd": n.used.usd_exact(),
        "crossed_at": crate::clock::rfc3339_micros(n.created_at),
    }))
    .unwrap_or_default()
}

/// `sha256=HEX` over `"{timestamp}.{body}"`.
pub fn sign(secret: &[u8], at: Timestamp, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(at.as_second().to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Ours signs "{t}.{body}".
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        let a = sign(b"k", at, b"{}");
        let expect = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"k"), b"1700000000.{}");
        let hex: String = expect.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(a, format!("sha256={hex}"));
        assert_ne!(sign(b"other", at, b"{}"), a);
    }

    #[test]
    fn percent_reads_fractions() {
        assert_eq!(percent("0.8"), "80%");
        assert_eq!(percent("0.125"), "12.5%");
        assert_eq!(percent("1"), "100%");
    }
}
