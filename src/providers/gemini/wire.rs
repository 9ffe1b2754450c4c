//! Gemini batch mode wire types (reference: providers-next.md section 1), camelCase as
//! the wire sends them: the batch as a long-running `Operation` whose `metadata` is a
//! `GenerateContentBatch`, `batchStats` (int64 counts as JSON strings, zero counts
//! omitted), the create body (inline requests or an uploaded file), inline and file
//! results with `usageMetadata`, the File resource, and Google's error envelope. Shared by
//! the gateway's Gemini provider and the simulator's Gemini surface. Reading accepts the
//! snake_case spellings the REST front end also takes (`display_name`, `input_config`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// `@type` of an operation's `metadata`.
pub const BATCH_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch";
/// `@type` of a finished operation's `response`.
pub const OUTPUT_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput";

/// An int64 sent as a JSON string (proto3 JSON); reads a number or a string.
pub mod int64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => s.parse().map_err(serde::de::Error::custom),
            Value::Number(n) => n.as_u64().ok_or_else(|| serde::de::Error::custom("negative")),
            other => Err(serde::de::Error::custom(format!("expected an int64, got {other}"))),
        }
    }
}

/// Optional int64 as a JSON string, omitted when zero or absent (proto3).
pub mod opt_int64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_str(&n.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
            Some(Value::Number(n)) => Ok(n.as_u64()),
            Some(other) => Err(serde::de::Error::custom(format!("expected an int64, got {other}"))),
        }
    }

    pub fn is_zero(v: &Option<u64>) -> bool {
        v.is_none_or(|n| n == 0)
    }
}

/// `metadata.state` of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BatchState {
    #[serde(rename = "BATCH_STATE_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "BATCH_STATE_PENDING")]
    Pending,
    #[serde(rename = "BATCH_STATE_RUNNING")]
    Running,
    #[serde(rename = "BATCH_STATE_SUCCEEDED")]
    Succeeded,
    #[serde(rename = "BATCH_STATE_FAILED")]
    Failed,
    #[serde(rename = "BATCH_STATE_CANCELLED")]
    Cancelled,
    #[serde(rename = "BATCH_STATE_EXPIRED")]
    Expired,
    /// Tested by some clients; not seen on the Gemini wire (UNCONFIRMED).
    #[serde(rename = "BATCH_STATE_PARTIALLY_SUCCEEDED")]
    PartiallySucceeded,
}

impl BatchState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchState::Succeeded
                | BatchState::Failed
                | BatchState::Cancelled
                | BatchState::Expired
                | BatchState::PartiallySucceeded
        )
    }
}

/// `metadata.batchStats`: int64 counts as strings, zero counts omitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchStats {
    #[serde(default, with = "opt_int64", skip_serializing_if = "opt_int64::is_zero")]
    pub request_count: Option<u64>,
    #[serde(default, with = "opt_int64", skip_serializing_if = "opt_int64::is_zero")]
    pub successful_request_count: Option<u64>,
    #[serde(default, with = "opt_int64", skip_serializing_if = "opt_int64::is_zero")]
    pub failed_request_count: Option<u64>,
    #[serde(default, with = "opt_int64", skip_serializing_if = "opt_int64::is_zero")]
    pub pending_request_count: Option<u64>,
}

/// One inline request of a create body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlinedRequest {
    /// A `GenerateContentRequest` (`contents`, `systemInstruction`, `generationConfig`,
    /// `tools`, ...; `model` optional).
    pub request: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `inputConfig.requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InlinedRequests {
    pub requests: Vec<InlinedRequest>,
}

/// `inputConfig`: an uploaded JSONL file or inline requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputConfig {
    #[serde(default, alias = "file_name", skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<InlinedRequests>,
}

/// One inline result: a `GenerateContentResponse` or a `google.rpc.Status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InlinedResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `inlinedResponses` (the double nesting is real).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlinedResponses {
    pub inlined_responses: Vec<InlinedResponse>,
}

/// `metadata.output` and the operation's `response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchOutput {
    /// Only in `response`: [`OUTPUT_TYPE`].
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub type_url: Option<String>,
    /// `files/batch-...` for file input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inlined_responses: Option<InlinedResponses>,
}

/// `GenerateContentBatch`: the batch itself (the operation's `metadata`, and the
/// `batch` of a create body).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentBatch {
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub type_url: Option<String>,
    /// `models/{model}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `batches/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, alias = "display_name", skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, alias = "input_config", skip_serializing_if = "Option::is_none")]
    pub input_config: Option<InputConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<BatchOutput>,
    /// RFC 3339 with nanoseconds and `Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_stats: Option<BatchStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BatchState>,
    /// int64 as a string; higher runs first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Value>,
    #[serde(default, alias = "webhook_config", skip_serializing_if = "Option::is_none")]
    pub webhook_config: Option<Value>,
}

/// `POST .../models/{model}:batchGenerateContent` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateBatchRequest {
    pub batch: GenerateContentBatch,
}

/// `google.rpc.Status`: numeric `code` (3 = INVALID_ARGUMENT, 13 = INTERNAL,
/// 14 = UNAVAILABLE, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub code: i32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

/// A batch as a long-running operation (create, get, and each item of list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// `batches/{id}`.
    pub name: String,
    pub metadata: GenerateContentBatch,
    /// Absent until terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<BatchOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
}

/// `GET .../batches?pageSize=&pageToken=`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOperations {
    #[serde(default)]
    pub operations: Vec<Operation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `{modality, tokenCount}` of the per-modality usage arrays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModalityTokenCount {
    /// `TEXT`, `IMAGE`, `VIDEO`, `AUDIO`, `DOCUMENT`.
    pub modality: String,
    #[serde(default)]
    pub token_count: u64,
}

/// `usageMetadata` of a `GenerateContentResponse`; zero counts are omitted on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Includes cached content.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prompt_token_count: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_content_token_count: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub candidates_token_count: u64,
    /// Thinking, billed as output.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub thoughts_token_count: u64,
    /// Not inside `promptTokenCount`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tool_use_prompt_token_count: u64,
    /// prompt + candidates + toolUsePrompt + thoughts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total_token_count: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_tokens_details: Vec<ModalityTokenCount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_tokens_details: Vec<ModalityTokenCount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates_tokens_details: Vec<ModalityTokenCount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_use_prompt_tokens_details: Vec<ModalityTokenCount>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One line of a results file: `{"key", "response"}` or `{"key", "error"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
}

/// One line of an input file: `{"key", "request"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub request: Value,
}

/// `File.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FileState {
    StateUnspecified,
    Processing,
    Active,
    Failed,
}

/// A File resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct File {
    /// `files/{id}`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, with = "int64")]
    pub size_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Only for generated files (batch results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<FileState>,
    /// `UPLOADED`, `GENERATED`, `REGISTERED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `{"file": File}`: the final answer of a resumable upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEnvelope {
    pub file: File,
}

/// `GET .../files?pageSize=&pageToken=`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListFiles {
    #[serde(default)]
    pub files: Vec<File>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Google's error envelope: `{"error": {"code": 404, "message", "status": "NOT_FOUND"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// `error` inside the envelope: HTTP status as `code`, the canonical name as `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: u16,
    pub message: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observed_running_operation_parses_and_counts_are_strings() {
        let text = r#"{"name": "batches/4m855v7q30kc7gtzcigdg9m72o87s08w33vp",
 "metadata": {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
   "model": "models/gemini-2.5-flash", "displayName": "test-batch-job",
   "inputConfig": {"fileName": "files/frh6ua11nk3o"},
   "createTime": "2025-12-10T18:27:01.407650525Z", "updateTime": "2025-12-10T18:27:38.619743501Z",
   "batchStats": {"requestCount": "3", "pendingRequestCount": "3"},
   "state": "BATCH_STATE_RUNNING", "name": "batches/4m855v7q30kc7gtzcigdg9m72o87s08w33vp"}}"#;
        let op: Operation = serde_json::from_str(text).unwrap();
        assert_eq!(op.metadata.state, Some(BatchState::Running));
        let stats = op.metadata.batch_stats.unwrap();
        assert_eq!((stats.request_count, stats.successful_request_count), (Some(3), None));
        let back = serde_json::to_value(&op).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn usage_omits_zero_counts() {
        let u = UsageMetadata {
            prompt_token_count: 8,
            candidates_token_count: 11,
            thoughts_token_count: 829,
            total_token_count: 848,
            ..UsageMetadata::default()
        };
        let v = serde_json::to_value(&u).unwrap();
        assert!(v.get("cachedContentTokenCount").is_none());
        assert_eq!(v["thoughtsTokenCount"], 829);
    }
}
