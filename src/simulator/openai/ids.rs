//! OpenAI's id formats: `batch_...`, `file-...`, `batch_req_...`, `chatcmpl-...`,
//! `resp_...`, and `x-request-id` values `req_` + 32 hex digits.

use crate::simulator::engine::ids::{Key, base62};

/// `batch_` + 24 hex-like base62 characters, from the seed and creation counter.
pub fn batch_id(seed: u64, seq: u64) -> String {
    format!("batch_{}", base62(Key::new(seed, "openai-batch").u64(seq).hash128(), 24))
}

/// `file-` + 22 base62 characters; `what` separates uploads from generated files.
pub fn file_id(seed: u64, what: &str, seq: u64) -> String {
    format!("file-{}", base62(Key::new(seed, "openai-file").str(what).u64(seq).hash128(), 22))
}

/// `batch_req_...` of one output line.
pub fn line_id(seed: u64, batch_seq: u64, index: u64) -> String {
    let h = Key::new(seed, "openai-line").u64(batch_seq).u64(index).hash128();
    format!("batch_req_{}", base62(h, 24))
}

/// The id of an endpoint's response body (`chatcmpl-...`, `resp_...`, `cmpl-...`).
pub fn body_id(prefix: &str, seed: u64, batch_seq: u64, index: u64) -> String {
    let h = Key::new(seed, "openai-body").u64(batch_seq).u64(index).hash128();
    format!("{prefix}{}", base62(h, 24))
}

/// `req_` + 32 lowercase hex digits, as the real `x-request-id` looks.
pub fn request_id(seed: u64, counter: u64) -> String {
    format!("req_{:032x}", Key::new(seed, "openai-request").u64(counter).hash128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_prefixes_and_are_stable() {
        assert!(batch_id(1, 1).starts_with("batch_"));
        assert_eq!(batch_id(1, 1), batch_id(1, 1));
        assert_ne!(file_id(1, "upload", 1), file_id(1, "output", 1));
        assert!(line_id(1, 1, 0).starts_with("batch_req_"));
        let r = request_id(1, 2);
        assert!(r.starts_with("req_") && r.len() == 36, "{r}");
    }
}
