//! Gemini's id formats: `batches/{id}` and `files/{id}` with ids of lowercase letters and
//! digits (the SDK and the File API accept `[a-z0-9-]`), `files/batch-{id}` for results.

use crate::simulator::engine::ids::Key;

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn base36(mut n: u128, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The id part of `batches/{id}` (36 characters, as observed).
pub fn batch_id(seed: u64, seq: u64) -> String {
    let a = Key::new(seed, "gemini-batch").u64(seq).hash128();
    let b = Key::new(seed, "gemini-batch-2").u64(seq).hash128();
    format!("{}{}", base36(a, 18), base36(b, 18))
}

/// The id part of `files/{id}` of an upload (12 characters, as observed).
pub fn file_id(seed: u64, seq: u64) -> String {
    base36(Key::new(seed, "gemini-file").u64(seq).hash128(), 12)
}

/// The id of an upload session (the capability the upload URL carries).
pub fn upload_id(seed: u64, seq: u64) -> String {
    base36(Key::new(seed, "gemini-upload").u64(seq).hash128(), 24)
}

/// `responseId` of one generated response.
pub fn response_id(seed: u64, batch_seq: u64, index: u64) -> String {
    base36(Key::new(seed, "gemini-response").u64(batch_seq).u64(index).hash128(), 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowercase_alphanumeric_and_stable() {
        let id = batch_id(1, 1);
        assert_eq!(id.len(), 36);
        assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(id, batch_id(1, 1));
        assert_ne!(id, batch_id(1, 2));
    }
}
