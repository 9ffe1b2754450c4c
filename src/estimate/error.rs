//! Why a batch body was refused. Every message names where the problem is (line and
//! column, or request index and field) because the gateway returns it verbatim as a 400.

use std::fmt;

/// Most requests a batch may hold (reference 1.3).
pub const MAX_REQUESTS: u64 = 100_000;
/// Highest `max_tokens` inside a batch (the extended-output beta; reference 1.3).
pub const MAX_MAX_TOKENS: u64 = 300_000;

/// A refused batch body. The gateway maps every variant except `Io` and `Options` to
/// `400 invalid_request_error` with [`EstimateError::message`] as the message.
#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    /// Not JSON at all, or broken inside (line and column in the body or JSONL file).
    #[error("{}malformed JSON at line {line} column {column}: {reason}", at_prefix(.at))]
    Syntax { at: Option<RequestAt>, line: u64, column: u64, reason: String },
    /// The body's shape is wrong (not an object, no `requests` array, empty).
    #[error("{0}")]
    Shape(String),
    /// 0 or more than 100,000 requests.
    #[error("requests: a batch holds 1 to {MAX_REQUESTS} requests, got {got}")]
    Count { got: String },
    /// One request is invalid: which one, which field, and what is wrong.
    #[error("{at}{}{field}: {problem}", if field.is_empty() { "" } else { "." })]
    Request { at: RequestAt, field: String, problem: Problem },
    /// The file could not be read (`batchcost estimate` only).
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Caller error in `EstimateOptions`, never the client's.
    #[error("expected_output_fraction must be between 0 and 1, got {0}")]
    Options(f64),
}

impl EstimateError {
    /// The user-facing message (what the gateway puts in `error.message`).
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// Where a request sits: its index, and its line in a JSONL body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestAt {
    pub index: u64,
    pub line: Option<u64>,
}

impl fmt::Display for RequestAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: requests[{}]", self.index),
            None => write!(f, "requests[{}]", self.index),
        }
    }
}

fn at_prefix(at: &Option<RequestAt>) -> String {
    at.map(|a| format!("{a}: ")).unwrap_or_default()
}

/// What is wrong with one field of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Missing,
    /// `expected` is a phrase ("a string"), `got` a short rendering of what was there.
    WrongType {
        expected: &'static str,
        got: String,
    },
    MaxTokens {
        got: String,
    },
    CustomIdFormat {
        got: String,
    },
    DuplicateCustomId {
        first_index: u64,
    },
    UnknownModel {
        model: String,
    },
    /// In the table, but its first price takes effect after the day priced (UTC).
    NotYetPriced {
        model: String,
        at: jiff::civil::Date,
        from: jiff::civil::Date,
    },
    /// Priced, but served by another provider than the endpoint called.
    OtherProvider {
        model: String,
        provider: String,
    },
    UnknownField,
    Stream,
    Invalid(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing => f.write_str("is required"),
            Problem::WrongType { expected, got } => write!(f, "must be {expected}, got {got}"),
            Problem::MaxTokens { got } => {
                write!(f, "must be an integer >= 1 and <= {MAX_MAX_TOKENS}, got {got}")
            }
            Problem::CustomIdFormat { got } => {
                write!(f, "must match ^[a-zA-Z0-9_-]{{1,64}}$, got {got}")
            }
            Problem::DuplicateCustomId { first_index } => {
                write!(f, "duplicates the custom_id of requests[{first_index}]")
            }
            Problem::UnknownModel { model } => {
                write!(f, "model \"{model}\" is not in the price table")
            }
            Problem::NotYetPriced { model, at, from } => write!(
                f,
                "model \"{model}\" has no price in force on {at} (UTC): its first price \
                 in the table takes effect on {from}"
            ),
            Problem::OtherProvider { model, provider } => {
                write!(
                    f,
                    "model \"{model}\" is priced for provider {provider}, not this endpoint's"
                )
            }
            Problem::UnknownField => f.write_str("unknown field"),
            Problem::Stream => f.write_str("must be false or absent: a batch cannot stream"),
            Problem::Invalid(why) => f.write_str(why),
        }
    }
}
