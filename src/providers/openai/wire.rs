//! OpenAI Batch API wire types (reference: batch-apis.md section 2, providers-next.md
//! section 2): the File and Batch objects, their list pages, the create body, batch input
//! and output lines, the usage objects of each endpoint, and the error envelope. Shared by
//! the gateway's OpenAI provider and the simulator's OpenAI surface, so both read and
//! write exactly the same JSON. Unknown fields are ignored when reading (the API adds
//! fields); optional fields are `Option` and, where the API sends `null`, serialized as
//! `null` rather than omitted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `purpose` of the files a batch reads and writes.
pub const PURPOSE_BATCH: &str = "batch";
/// `purpose` of the output and error files a batch writes.
pub const PURPOSE_BATCH_OUTPUT: &str = "batch_output";
/// The only `completion_window` the API accepts.
pub const COMPLETION_WINDOW: &str = "24h";
/// Requests per batch input file, at most.
pub const MAX_LINES: usize = 50_000;
/// Bytes per batch input file, at most (200 MB).
pub const MAX_BATCH_FILE_BYTES: u64 = 200 * 1024 * 1024;
/// Endpoints a batch may target (`url` of every line, `endpoint` of the batch).
pub const ENDPOINTS: &[&str] = &[
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
];

/// A File object (`GET /v1/files/{id}`, each item of the files list, the upload answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    /// `file-...`.
    pub id: String,
    /// Always `"file"`.
    pub object: String,
    pub bytes: u64,
    /// Unix seconds.
    pub created_at: i64,
    pub filename: String,
    /// `batch` for inputs, `batch_output` for a batch's output and error files.
    pub purpose: String,
    /// Deprecated by the API, still sent: `uploaded`, `processed` or `error`.
    #[serde(default)]
    pub status: Option<String>,
    /// Unix seconds, or `null` for files that do not expire.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Deprecated by the API, still sent (usually `null`).
    #[serde(default)]
    pub status_details: Option<String>,
}

/// `DELETE /v1/files/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDeleted {
    pub id: String,
    /// Always `"file"`.
    pub object: String,
    pub deleted: bool,
}

/// A cursor page (`GET /v1/files`, `GET /v1/batches`): the SDK asks for the next page
/// with `after=<last_id>` while `has_more` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage<T> {
    /// Always `"list"`.
    pub object: String,
    pub data: Vec<T>,
    #[serde(default)]
    pub first_id: Option<String>,
    #[serde(default)]
    pub last_id: Option<String>,
    #[serde(default)]
    pub has_more: bool,
}

/// `status` of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// The input file is being checked.
    Validating,
    /// Validation failed; see `errors`.
    Failed,
    InProgress,
    /// Every request is done; the output and error files are being written.
    Finalizing,
    Completed,
    /// The 24 h window ended first; unfinished requests are in the error file.
    Expired,
    /// Cancel was asked; in-flight requests finish (up to 10 minutes).
    Cancelling,
    Cancelled,
}

impl BatchStatus {
    /// No further change will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchStatus::Failed
                | BatchStatus::Completed
                | BatchStatus::Expired
                | BatchStatus::Cancelled
        )
    }
}

/// `request_counts` of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

/// One validation error of a batch's input (`errors.data[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    /// 1-based line of the input file.
    #[serde(default)]
    pub line: Option<u64>,
}

/// `errors` of a batch: `{"object": "list", "data": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchErrors {
    pub object: String,
    pub data: Vec<BatchError>,
}

/// `input_tokens_details` of the batch usage and of the Responses API usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Included in `input_tokens`.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Cache writes (newer models; absent on older ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

/// `output_tokens_details` of the batch usage and of the Responses API usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Included in `output_tokens`.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// Token usage in the Responses API's names: a batch's aggregate `usage` (batches created
/// after 2025-09-07) and `usage` of a `/v1/responses` body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsesUsage {
    /// Includes cached tokens (and cache writes).
    pub input_tokens: u64,
    #[serde(default)]
    pub input_tokens_details: InputTokensDetails,
    /// Includes reasoning tokens.
    pub output_tokens: u64,
    #[serde(default)]
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

/// The Batch object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// `batch_...`.
    pub id: String,
    /// Always `"batch"`.
    pub object: String,
    pub endpoint: String,
    /// The model the batch used (newer field).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub errors: Option<BatchErrors>,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: BatchStatus,
    /// Successful requests' lines; set once the batch is done.
    #[serde(default)]
    pub output_file_id: Option<String>,
    /// Failed, expired and cancelled requests' lines; set once the batch is done.
    #[serde(default)]
    pub error_file_id: Option<String>,
    /// Unix seconds, like every timestamp below.
    pub created_at: i64,
    #[serde(default)]
    pub in_progress_at: Option<i64>,
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub finalizing_at: Option<i64>,
    #[serde(default)]
    pub completed_at: Option<i64>,
    #[serde(default)]
    pub failed_at: Option<i64>,
    #[serde(default)]
    pub expired_at: Option<i64>,
    #[serde(default)]
    pub cancelling_at: Option<i64>,
    #[serde(default)]
    pub cancelled_at: Option<i64>,
    #[serde(default)]
    pub request_counts: RequestCounts,
    #[serde(default)]
    pub usage: Option<ResponsesUsage>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `output_expires_after` of a create, and `expires_after` of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiresAfter {
    /// Only `"created_at"`.
    pub anchor: String,
    /// 3600 to 2592000.
    pub seconds: u64,
}

/// `POST /v1/batches` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateBatch {
    pub input_file_id: String,
    pub endpoint: String,
    pub completion_window: String,
    /// Up to 16 pairs; keys up to 64 characters, values up to 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_expires_after: Option<ExpiresAfter>,
}

/// One line of a batch input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputLine {
    /// Unique within the file.
    pub custom_id: String,
    /// Only `"POST"`.
    pub method: String,
    /// The same endpoint on every line, equal to the batch's `endpoint`.
    pub url: String,
    /// The endpoint's usual request body.
    pub body: Value,
}

/// `response` of an output (or error) line: the endpoint's HTTP answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineResponse {
    pub status_code: u16,
    pub request_id: String,
    /// The endpoint's response body (or its error envelope for a 4xx/5xx).
    pub body: Value,
}

/// `error` of an error line: a failure that never reached the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineError {
    /// `batch_expired`, `batch_cancelled`, `request_timeout`, ...
    pub code: String,
    pub message: String,
}

/// Known `error.code` values of error lines.
pub const LINE_EXPIRED: &str = "batch_expired";
pub const LINE_CANCELLED: &str = "batch_cancelled";

/// One line of an output or error file. Output order is not input order: join on
/// `custom_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputLine {
    /// `batch_req_...`.
    pub id: String,
    pub custom_id: String,
    #[serde(default)]
    pub response: Option<LineResponse>,
    #[serde(default)]
    pub error: Option<LineError>,
}

/// `prompt_tokens_details` of chat and legacy completions usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Included in `prompt_tokens`.
    #[serde(default)]
    pub cached_tokens: u64,
    #[serde(default)]
    pub audio_tokens: u64,
    /// Cache writes (newer models; absent on older ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

/// `completion_tokens_details` of chat and legacy completions usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Included in `completion_tokens`.
    #[serde(default)]
    pub reasoning_tokens: u64,
    #[serde(default)]
    pub audio_tokens: u64,
    #[serde(default)]
    pub accepted_prediction_tokens: u64,
    #[serde(default)]
    pub rejected_prediction_tokens: u64,
}

/// `usage` of `/v1/chat/completions` and `/v1/completions` bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

/// `usage` of `/v1/embeddings` bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingsUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// The error envelope of every non-2xx answer (and of a failed line's `response.body`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// `error` inside the envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    pub error_type: String,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

impl ErrorEnvelope {
    pub fn new(error_type: &str, message: impl Into<String>) -> Self {
        ErrorEnvelope {
            error: ErrorBody {
                message: message.into(),
                error_type: error_type.into(),
                param: None,
                code: None,
            },
        }
    }

    pub fn with_param(mut self, param: Option<&str>) -> Self {
        self.error.param = param.map(str::to_string);
        self
    }

    pub fn with_code(mut self, code: Option<&str>) -> Self {
        self.error.code = code.map(str::to_string);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_documented_batch_round_trips() {
        let text = r#"{"id":"batch_abc","object":"batch","endpoint":"/v1/chat/completions","model":"gpt-5-mini-2025-08-07",
 "errors":null,"input_file_id":"file-in1","completion_window":"24h","status":"completed",
 "output_file_id":"file-out1","error_file_id":"file-err1","created_at":1767600000,"in_progress_at":1767600005,
 "expires_at":1767686400,"finalizing_at":1767603000,"completed_at":1767603030,"failed_at":null,"expired_at":null,
 "cancelling_at":null,"cancelled_at":null,"request_counts":{"total":3,"completed":2,"failed":1},
 "usage":{"input_tokens":900,"input_tokens_details":{"cached_tokens":512},"output_tokens":120,
          "output_tokens_details":{"reasoning_tokens":64},"total_tokens":1020},
 "metadata":{"job":"nightly"}}"#;
        let b: Batch = serde_json::from_str(text).unwrap();
        assert_eq!(b.status, BatchStatus::Completed);
        assert_eq!(b.usage.unwrap().input_tokens_details.cached_tokens, 512);
        let again: Value = serde_json::to_value(&b).unwrap();
        let orig: Value = serde_json::from_str(text).unwrap();
        assert_eq!(again, orig);
    }

    #[test]
    fn output_and_error_lines_parse() {
        let ok = r#"{"id":"batch_req_123","custom_id":"req-1","response":{"status_code":200,"request_id":"req_9f","body":{"usage":{"prompt_tokens":5}}},"error":null}"#;
        let line: OutputLine = serde_json::from_str(ok).unwrap();
        assert_eq!(line.response.unwrap().status_code, 200);
        let err = r#"{"id":"batch_req_124","custom_id":"req-7","response":null,"error":{"code":"batch_expired","message":"m"}}"#;
        let line: OutputLine = serde_json::from_str(err).unwrap();
        assert_eq!(line.error.unwrap().code, LINE_EXPIRED);
    }
}
