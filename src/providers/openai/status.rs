//! Reading a batch object, from OpenAI or a compatible upstream, into what the core needs
//! (reference batch-apis 2.3, providers-next 3). Lenient on purpose: the deviations of
//! compatible upstreams are normalised here and nowhere else.
//!
//! - Status words: OpenAI's lowercase `validating, in_progress, finalizing, completed,
//!   failed, expired, cancelling, cancelled`; Together's and Novita's UPPERCASE, Novita's
//!   `PROGRESS`; `canceled`/`canceling` spellings. An unknown word is an error naming it.
//! - Together wraps the created object: `{"job": {...}, "warning": ...}`.
//! - Timestamps: unix seconds (OpenAI) or RFC 3339 strings (Together).
//! - Counts: `request_counts {total, completed, failed}`; missing (Together reports only a
//!   percentage) reads as zeros, and settlement falls back to the submitted count.

use jiff::Timestamp;
use serde_json::Value;

/// The submission id the gateway stamps on every batch it creates (`metadata`), so a
/// batch whose acceptance was never recorded is found again exactly.
pub const SUBMISSION_KEY: &str = "batchcost_submission";
/// The project that made the batch, also stamped in `metadata` (for operators).
pub const PROJECT_KEY: &str = "batchcost_project";

/// Where a batch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Canceling,
    Ended,
}

/// A batch object, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub id: String,
    pub phase: Phase,
    /// The status word as OpenAI spells it (lowercase), for the ledger and logs.
    pub status: String,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub created_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub input_file_id: Option<String>,
    /// `metadata.batchcost_submission`.
    pub tag: Option<String>,
}

/// The phase of a status word, case-insensitively; `None` for a word no upstream uses.
pub fn phase_of(word: &str) -> Option<(Phase, &'static str)> {
    Some(match word.to_ascii_lowercase().as_str() {
        "validating" | "queued" => (Phase::Pending, "validating"),
        "in_progress" | "progress" | "running" => (Phase::Running, "in_progress"),
        "finalizing" => (Phase::Running, "finalizing"),
        "cancelling" | "canceling" => (Phase::Canceling, "cancelling"),
        "completed" => (Phase::Ended, "completed"),
        "failed" => (Phase::Ended, "failed"),
        "expired" => (Phase::Ended, "expired"),
        "cancelled" | "canceled" => (Phase::Ended, "cancelled"),
        _ => return None,
    })
}

/// The batch object inside an answer: unwraps Together's `{"job": {...}}`.
pub fn batch_object(v: &Value) -> &Value {
    match v.get("job") {
        Some(job) if job.is_object() && v.get("id").is_none() => job,
        _ => v,
    }
}

fn time(v: Option<&Value>) -> Option<Timestamp> {
    match v? {
        Value::Number(n) => Timestamp::from_second(n.as_i64()?).ok(),
        Value::String(s) => s.parse::<Timestamp>().ok(),
        _ => None,
    }
}

fn string(v: Option<&Value>) -> Option<String> {
    v?.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// Reads a batch object (or a create answer).
pub fn parse(body: &[u8]) -> Result<Status, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    from_value(&v)
}

/// As [`parse`], from a parsed value.
pub fn from_value(v: &Value) -> Result<Status, String> {
    let b = batch_object(v);
    let id = string(b.get("id")).ok_or("batch object without `id`")?;
    let word = b.get("status").and_then(Value::as_str).ok_or("batch object without `status`")?;
    let (phase, status) = phase_of(word).ok_or_else(|| format!("unknown batch status `{word}`"))?;
    let counts = b.get("request_counts");
    let count = |k: &str| counts.and_then(|c| c.get(k)).and_then(Value::as_u64).unwrap_or(0);
    let ended_at = ["completed_at", "failed_at", "expired_at", "cancelled_at"]
        .iter()
        .find_map(|k| time(b.get(*k)));
    Ok(Status {
        id,
        phase,
        status: status.to_string(),
        total: count("total"),
        completed: count("completed"),
        failed: count("failed"),
        created_at: time(b.get("created_at")),
        ended_at,
        output_file_id: string(b.get("output_file_id")),
        error_file_id: string(b.get("error_file_id")),
        input_file_id: string(b.get("input_file_id")),
        tag: b.get("metadata").and_then(|m| m.get(SUBMISSION_KEY)).and_then(|t| string(Some(t))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_word_maps_and_unknown_ones_are_named() {
        for (w, p) in [
            ("validating", Phase::Pending),
            ("in_progress", Phase::Running),
            ("finalizing", Phase::Running),
            ("cancelling", Phase::Canceling),
            ("completed", Phase::Ended),
            ("failed", Phase::Ended),
            ("expired", Phase::Ended),
            ("cancelled", Phase::Ended),
            ("IN_PROGRESS", Phase::Running),
            ("PROGRESS", Phase::Running),
            ("CANCELLED", Phase::Ended),
        ] {
            assert_eq!(phase_of(w).map(|x| x.0), Some(p), "{w}");
        }
        let e = parse(br#"{"id":"b","status":"JOB_STATE_RUNNING"}"#).unwrap_err();
        assert!(e.contains("JOB_STATE_RUNNING"), "{e}");
    }

    #[test]
    fn openai_and_together_objects_read_alike() {
        let openai = br#"{"id":"batch_abc","object":"batch","status":"completed","output_file_id":"file-out1","error_file_id":null,"created_at":1767600000,"completed_at":1767603030,"request_counts":{"total":3,"completed":2,"failed":1},"metadata":{"batchcost_submission":"sub_1"}}"#;
        let s = parse(openai).unwrap();
        assert_eq!((s.phase, s.total, s.completed, s.failed), (Phase::Ended, 3, 2, 1));
        assert_eq!(s.output_file_id.as_deref(), Some("file-out1"));
        assert_eq!(s.error_file_id, None);
        assert_eq!(s.tag.as_deref(), Some("sub_1"));
        assert_eq!(s.ended_at.unwrap().as_second() - s.created_at.unwrap().as_second(), 3030);
        let together = br#"{"job":{"id":"b-1","status":"IN_PROGRESS","progress":40.0,"created_at":"2026-01-05T08:00:00Z","model_id":"m"},"warning":"w"}"#;
        let s = parse(together).unwrap();
        assert_eq!(
            (s.id.as_str(), s.phase, s.status.as_str()),
            ("b-1", Phase::Running, "in_progress")
        );
        assert_eq!(s.created_at.unwrap().as_second(), 1767600000);
        assert_eq!(s.total, 0);
    }
}
