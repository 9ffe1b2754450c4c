//! `POST /v1/files`: the multipart form the SDK sends (`file` with a filename, `purpose`,
//! optional `expires_after[anchor]` / `expires_after[seconds]`), and the checks a
//! `purpose=batch` file gets: JSONL, every line `{custom_id, method, url, body}`,
//! `custom_id` unique, `method` POST, one `url` (a batch endpoint) and one model for the
//! whole file, at most 50,000 lines and 200 MB. A bad line is a 400 naming its line
//! number and field; a bad `body` is kept and becomes an error line later.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use memchr::memmem;
use serde_json::Value;

use super::body::{Endpoint, Invalid, summarize};
use super::error::ApiError;
use crate::providers::openai::wire::{ENDPOINTS, MAX_BATCH_FILE_BYTES, MAX_LINES, PURPOSE_BATCH};
use crate::simulator::engine::registry;
use crate::simulator::engine::usage::Breakpoint;

/// Any file is at most 512 MB; the form around it adds a little.
pub const MAX_UPLOAD_BYTES: usize = 512 * 1024 * 1024 + 64 * 1024;
/// Purposes an upload may name.
const PURPOSES: &[&str] = &["assistants", "batch", "fine-tune", "vision", "user_data", "evals"];

/// What is kept of one request line between upload and results.
#[derive(Debug)]
pub struct Record {
    pub custom_id: Box<str>,
    pub model: Arc<str>,
    pub max_output: u32,
    pub input_tokens: u64,
    pub breakpoints: Box<[Breakpoint]>,
    pub inputs: u32,
    pub reasoning: bool,
    pub invalid: Option<Box<Invalid>>,
}

impl registry::Record for Record {
    fn breakpoints(&self) -> &[Breakpoint] {
        &self.breakpoints
    }
    fn rejected(&self) -> bool {
        self.invalid.is_some()
    }
}

/// A checked batch input file: its endpoint, model and records, shared by every batch
/// created from it.
#[derive(Debug)]
pub struct BatchInput {
    pub endpoint: Endpoint,
    pub url: String,
    pub model: String,
    pub records: Arc<Vec<Record>>,
}

/// A parsed upload form.
#[derive(Debug)]
pub struct Upload {
    pub filename: String,
    pub purpose: String,
    pub content: Bytes,
    pub expires_after_secs: Option<u64>,
}

fn bad(message: impl Into<String>, param: &'static str) -> ApiError {
    ApiError::invalid(message, Some(param))
}

/// Reads and parses the multipart form.
pub async fn read_upload(body: Body, content_type: Option<&str>) -> Result<Upload, ApiError> {
    let boundary = content_type
        .filter(|ct| ct.trim_start().starts_with("multipart/form-data"))
        .and_then(|ct| ct.split(';').find_map(|p| p.trim().strip_prefix("boundary=")))
        .map(|b| b.trim_matches('"').to_string())
        .ok_or_else(|| bad("The request must be multipart/form-data with a boundary.", "file"))?;
    let bytes = axum::body::to_bytes(body, MAX_UPLOAD_BYTES).await.map_err(|_| {
        ApiError::TooLarge(format!(
            "File upload exceeds the maximum allowed size of {MAX_UPLOAD_BYTES} bytes."
        ))
    })?;
    parse_form(bytes, &boundary)
}

fn parse_form(bytes: Bytes, boundary: &str) -> Result<Upload, ApiError> {
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    let malformed = || bad("Malformed multipart body.", "file");
    let mut pos = memmem::find(&bytes, delim.as_bytes()).ok_or_else(malformed)? + delim.len();
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut file: Option<(String, Bytes)> = None;
    loop {
        if bytes[pos..].starts_with(b"--") {
            break;
        }
        pos += if bytes[pos..].starts_with(b"\r\n") { 2 } else { return Err(malformed()) };
        let head_len = memmem::find(&bytes[pos..], b"\r\n\r\n").ok_or_else(malformed)?;
        let head = String::from_utf8_lossy(&bytes[pos..pos + head_len]).to_string();
        let start = pos + head_len + 4;
        let len = memmem::find(&bytes[start..], next_delim.as_bytes()).ok_or_else(malformed)?;
        let data = bytes.slice(start..start + len);
        pos = start + len + next_delim.len();
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .unwrap_or_default();
        let param = |key: &str| {
            disposition.split(';').find_map(|p| {
                p.trim().strip_prefix(&format!("{key}=")).map(|v| v.trim_matches('"').to_string())
            })
        };
        let Some(name) = param("name") else { return Err(malformed()) };
        match param("filename") {
            Some(filename) if name == "file" => file = Some((filename, data)),
            _ => {
                fields.insert(name, String::from_utf8_lossy(&data).to_string());
            }
        }
    }
    let Some(purpose) = fields.remove("purpose") else {
        return Err(bad("Missing required parameter: 'purpose'.", "purpose"));
    };
    if !PURPOSES.contains(&purpose.as_str()) {
        return Err(bad(
            format!("Invalid value for 'purpose': '{purpose}'. Expected one of {PURPOSES:?}."),
            "purpose",
        ));
    }
    let Some((filename, content)) = file else {
        return Err(bad("Missing required parameter: 'file'.", "file"));
    };
    let expires_after_secs =
        match (fields.remove("expires_after[anchor]"), fields.remove("expires_after[seconds]")) {
            (None, None) => None,
            (Some(a), Some(s)) if a == "created_at" => match s.parse::<u64>() {
                Ok(n) if (3600..=2_592_000).contains(&n) => Some(n),
                _ => {
                    return Err(bad(
                        "Invalid 'expires_after.seconds': expected 3600 to 2592000.",
                        "expires_after.seconds",
                    ));
                }
            },
            _ => {
                return Err(bad(
                    "Invalid 'expires_after': anchor 'created_at' and seconds are both required.",
                    "expires_after",
                ));
            }
        };
    Ok(Upload { filename, purpose, content, expires_after_secs })
}

/// Checks a `purpose=batch` file line by line and keeps a compact record per line.
pub fn parse_batch_file(content: &[u8], models: &HashSet<String>) -> Result<BatchInput, ApiError> {
    if content.len() as u64 > MAX_BATCH_FILE_BYTES {
        return Err(bad(
            format!(
                "File is too large for purpose 'batch': {} bytes; the limit is {MAX_BATCH_FILE_BYTES} bytes (200 MB).",
                content.len()
            ),
            "file",
        ));
    }
    let line_err =
        |n: usize, what: String| bad(format!("Invalid batch input file: line {n}: {what}"), "file");
    let mut records: Vec<Record> = Vec::new();
    let mut seen: HashMap<u64, Vec<(u32, usize)>> = HashMap::new();
    let mut url: Option<(String, Endpoint)> = None;
    let mut model: Option<String> = None;
    let mut interned: HashMap<String, Arc<str>> = HashMap::new();
    for (i, raw) in content.split(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if records.len() == MAX_LINES {
            return Err(line_err(
                n,
                format!("a batch input file holds at most {MAX_LINES} requests"),
            ));
        }
        let v: Value = serde_json::from_slice(raw)
            .map_err(|e| line_err(n, format!("not valid JSON ({e})")))?;
        let Value::Object(mut o) = v else {
            return Err(line_err(n, "each line must be a JSON object".into()));
        };
        let custom_id = match o.remove("custom_id") {
            Some(Value::String(c)) if !c.is_empty() => c,
            Some(_) => return Err(line_err(n, "custom_id: expected a non-empty string".into())),
            None => return Err(line_err(n, "custom_id: missing".into())),
        };
        let h = xxhash_rust::xxh3::xxh3_64(custom_id.as_bytes());
        let same = seen.entry(h).or_default();
        if let Some(&(first, _)) = same.iter().find(|(_, j)| *records[*j].custom_id == *custom_id) {
            return Err(line_err(
                n,
                format!(
                    "custom_id: '{custom_id}' is a duplicate (first used on line {first}); custom_id must be unique within a batch"
                ),
            ));
        }
        same.push((n as u32, records.len()));
        match o.get("method") {
            Some(Value::String(m)) if m == "POST" => {}
            Some(other) => {
                return Err(line_err(n, format!("method: expected \"POST\", got {other}")));
            }
            None => return Err(line_err(n, "method: missing".into())),
        }
        let line_url = match o.get("url") {
            Some(Value::String(u)) => u.clone(),
            _ => return Err(line_err(n, "url: missing or not a string".into())),
        };
        let Some(endpoint) = Endpoint::parse(&line_url) else {
            return Err(line_err(
                n,
                format!(
                    "url: '{line_url}' is not a batch endpoint (expected one of {ENDPOINTS:?})"
                ),
            ));
        };
        match &url {
            None => url = Some((line_url, endpoint)),
            Some((u, _)) if *u != line_url => {
                return Err(line_err(
                    n,
                    format!(
                        "url: '{line_url}' differs from '{u}'; every line of a batch must use the same url"
                    ),
                ));
            }
            Some(_) => {}
        }
        let body = match o.remove("body") {
            Some(b @ Value::Object(_)) => b,
            Some(_) => return Err(line_err(n, "body: expected an object".into())),
            None => return Err(line_err(n, "body: missing".into())),
        };
        let s = summarize(endpoint, &body, models);
        match &model {
            None => model = Some(s.model.clone()),
            Some(m) if *m != s.model && !s.model.is_empty() => {
                return Err(line_err(
                    n,
                    format!(
                        "body.model: '{}' differs from '{m}'; a batch input file holds one model",
                        s.model
                    ),
                ));
            }
            Some(_) => {}
        }
        let model_arc = match interned.get(&s.model) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(s.model.as_str());
                interned.insert(s.model.clone(), a.clone());
                a
            }
        };
        records.push(Record {
            custom_id: custom_id.into_boxed_str(),
            model: model_arc,
            max_output: u32::try_from(s.max_output).unwrap_or(u32::MAX),
            input_tokens: s.input_tokens,
            breakpoints: s.breakpoints.into_boxed_slice(),
            inputs: s.inputs,
            reasoning: s.reasoning,
            invalid: s.invalid.map(Box::new),
        });
    }
    let Some((url, endpoint)) = url else {
        return Err(bad("Invalid batch input file: it holds no requests.", "file"));
    };
    Ok(BatchInput { endpoint, url, model: model.unwrap_or_default(), records: Arc::new(records) })
}

/// Whether an upload names the batch purpose.
pub fn is_batch(purpose: &str) -> bool {
    purpose == PURPOSE_BATCH
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> HashSet<String> {
        ["gpt-4o-mini".to_string()].into_iter().collect()
    }

    fn line(id: &str, url: &str) -> String {
        format!(
            r#"{{"custom_id":"{id}","method":"POST","url":"{url}","body":{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"hi"}}]}}}}"#
        )
    }

    fn err(text: &str) -> String {
        match parse_batch_file(text.as_bytes(), &models()) {
            Err(ApiError::InvalidRequest { message, .. }) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_good_file_keeps_one_record_per_line() {
        let text = format!(
            "{}\n{}\n",
            line("a", "/v1/chat/completions"),
            line("b", "/v1/chat/completions")
        );
        let input = parse_batch_file(text.as_bytes(), &models()).unwrap();
        assert_eq!((input.records.len(), input.url.as_str()), (2, "/v1/chat/completions"));
    }

    #[test]
    fn bad_lines_are_named_by_number_and_field() {
        let dup =
            format!("{}\n{}", line("a", "/v1/chat/completions"), line("a", "/v1/chat/completions"));
        assert!(err(&dup).contains("line 2: custom_id: 'a' is a duplicate (first used on line 1)"));
        let urls = format!("{}\n{}", line("a", "/v1/chat/completions"), line("b", "/v1/responses"));
        assert!(err(&urls).contains("line 2: url:"));
        let get = line("a", "/v1/chat/completions").replace("POST", "GET");
        assert!(err(&get).contains("line 1: method"));
        assert!(err("{nope").contains("line 1: not valid JSON"));
        let many: String = (0..=MAX_LINES)
            .map(|i| line(&format!("r{i}"), "/v1/chat/completions") + "\n")
            .collect();
        assert!(err(&many).contains("line 50001: a batch input file holds at most 50000 requests"));
    }

    #[test]
    fn the_form_gives_file_purpose_and_expiry() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--XX\r\nContent-Disposition: form-data; name=\"expires_after[anchor]\"\r\n\r\ncreated_at\r\n--XX\r\nContent-Disposition: form-data; name=\"expires_after[seconds]\"\r\n\r\n3600\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: application/octet-stream\r\n\r\nabc\r\n--XX--\r\n";
        let u = parse_form(Bytes::from(body), "XX").unwrap();
        assert_eq!((u.filename.as_str(), u.purpose.as_str()), ("in.jsonl", "batch"));
        assert_eq!((&u.content[..], u.expires_after_secs), (&b"abc"[..], Some(3600)));
    }
}
