//! Wire types of the Anthropic Message Batches API (reference section 1), shared by the
//! gateway and the simulator so both speak exactly the same JSON.

use serde::{Deserialize, Serialize};

/// `processing_status`: only these three values exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingStatus {
    InProgress,
    Canceling,
    Ended,
}

impl ProcessingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessingStatus::InProgress => "in_progress",
            ProcessingStatus::Canceling => "canceling",
            ProcessingStatus::Ended => "ended",
        }
    }
}

/// Per-status request counts; their sum is always the batch's request count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub processing: u64,
    pub succeeded: u64,
    pub errored: u64,
    pub canceled: u64,
    pub expired: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        // Saturating: corrupt counts from the wire must not panic or wrap.
        [self.processing, self.succeeded, self.errored, self.canceled, self.expired]
            .iter()
            .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// The `message_batch` object. Timestamps stay strings so they pass through untouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageBatch {
    pub id: String,
    #[serde(rename = "type")]
    pub object_type: String,
    pub processing_status: ProcessingStatus,
    pub request_counts: RequestCounts,
    pub ended_at: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub archived_at: Option<String>,
    pub cancel_initiated_at: Option<String>,
    pub results_url: Option<String>,
}

/// One page of `GET /v1/messages/batches`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchPage {
    pub data: Vec<MessageBatch>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

/// Answer to `DELETE /v1/messages/batches/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedBatch {
    pub id: String,
    #[serde(rename = "type")]
    pub object_type: String,
}

/// The error envelope of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(rename = "type")]
    pub object_type: String,
    pub error: ErrorBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `error` inside the envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub error_type: String,
    pub message: String,
}

impl ErrorEnvelope {
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorEnvelope {
            object_type: "error".into(),
            error: ErrorBody { error_type: error_type.into(), message: message.into() },
            request_id: None,
        }
    }
}

/// `usage.cache_creation`: the TTL split of cache writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCreation {
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

/// `usage.server_tool_use`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerToolUse {
    #[serde(default)]
    pub web_search_requests: u64,
    #[serde(default)]
    pub web_fetch_requests: u64,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    #[serde(default)]
    pub thinking_tokens: u64,
}

/// The usage object of a succeeded result (reference 1.8). Optional fields may be absent
/// or null on the wire; both read as `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
    #[serde(default)]
    pub server_tool_use: Option<ServerToolUse>,
    #[serde(default)]
    pub service_tier: Option<String>,
    #[serde(default)]
    pub inference_geo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutputTokensDetails>,
}

/// The `Message` inside a succeeded result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    #[serde(rename = "type")]
    pub object_type: String,
    pub role: String,
    pub model: String,
    pub content: Vec<serde_json::Value>,
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

/// `result`, discriminated by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // mirrors the wire; boxing would change the public type
pub enum BatchResult {
    Succeeded { message: Box<Message> },
    Errored { error: ErrorEnvelope },
    Canceled,
    Expired,
}

/// One line of the results JSONL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultLine {
    pub custom_id: String,
    pub result: BatchResult,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{LineDecoder, Outcome};

    #[test]
    fn reads_the_reference_result_lines() {
        let lines = [
            r#"{"custom_id":"row-2","result":{"type":"succeeded","message":{"id":"msg_01XYZ","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Hi."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":4,"service_tier":"batch"}}}}"#,
            r#"{"custom_id":"row-1","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}}}"#,
            r#"{"custom_id":"row-3","result":{"type":"expired"}}"#,
        ];
        let full: Vec<ResultLine> =
            lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(matches!(full[2].result, BatchResult::Expired));
        match &full[0].result {
            BatchResult::Succeeded { message } => {
                assert_eq!(message.usage.input_tokens, 12);
                assert_eq!(message.usage.service_tier.as_deref(), Some("batch"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(full[1].result, BatchResult::Errored { .. }));
        // Settlement's decoder (which skips the content) reads the same lines alike.
        let lite = super::super::results::Lines;
        let item = lite.decode(lines[0].as_bytes()).unwrap();
        assert_eq!((item.outcome, item.usage.input), (Outcome::Succeeded, 12));
        assert_eq!(lite.decode(lines[1].as_bytes()).unwrap().outcome, Outcome::Errored);
    }
}
