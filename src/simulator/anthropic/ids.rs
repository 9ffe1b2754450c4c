//! Anthropic's id formats: `msgbatch_01...`, `msg_01...`, `req_011C...`.

use crate::simulator::engine::ids::{Key, base62, write_base62};

/// `msgbatch_01...`: the real ids start with `01` and carry 24 more characters.
pub fn batch_id(seed: u64, seq: u64) -> String {
    format!("msgbatch_01{}", base62(Key::new(seed, "batch").u64(seq).hash128(), 22))
}

/// `msg_01...`, stable for a given batch, position and custom_id (the results write it
/// in place with [`write_message_id`]).
#[cfg(test)]
pub fn message_id(seed: u64, batch_seq: u64, index: u64, custom_id: &str) -> String {
    let mut out = Vec::with_capacity(28);
    write_message_id(seed, batch_seq, index, custom_id, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`message_id`] appended to `out`.
pub fn write_message_id(seed: u64, batch_seq: u64, index: u64, custom_id: &str, out: &mut Vec<u8>) {
    let h = Key::new(seed, "message").u64(batch_seq).u64(index).str(custom_id).hash128();
    out.extend_from_slice(b"msg_01");
    write_base62(h, 22, out);
}

/// `req_011C...` as the real `request-id` header looks.
pub fn request_id(seed: u64, counter: u64) -> String {
    format!("req_011C{}", base62(Key::new(seed, "request").u64(counter).hash128(), 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_prefixes_and_are_stable_per_seed() {
        let a = batch_id(7, 1);
        assert!(a.starts_with("msgbatch_01") && a.len() == "msgbatch_01".len() + 22, "{a}");
        assert_eq!(a, batch_id(7, 1));
        assert_ne!(a, batch_id(8, 1));
        assert_ne!(a, batch_id(7, 2));
        assert!(message_id(1, 1, 0, "x").starts_with("msg_01"));
        assert_ne!(message_id(1, 1, 0, "x"), message_id(1, 1, 1, "x"));
        let r = request_id(1, 5);
        assert!(
            r.starts_with("req_011C") && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        );
    }
}
