//! Splitting items into batches that fit the provider's limits: at most `max_requests`
//! requests and `max_bytes` of create body each, in input order.

use super::input::Input;
use super::provider::Limits;

/// Consecutive runs of `items` (kept in their order), each within `limits`. `overhead` is
/// (bytes per request line, bytes per body) as the provider builds bodies. An item too
/// big for any batch is an error naming it.
pub fn split(
    input: &Input,
    items: &[u32],
    limits: Limits,
    overhead: (u64, u64),
) -> Result<Vec<(Vec<u32>, u64)>, String> {
    let (per_line, per_body) = overhead;
    let mut out = Vec::new();
    let mut cur: Vec<u32> = Vec::new();
    let mut bytes = per_body;
    for &i in items {
        let add = input.size(i) + per_line;
        if per_body + add > limits.max_bytes {
            return Err(format!(
                "request `{}` is {} bytes: no batch of at most {} bytes can hold it",
                input.ids[i as usize],
                input.size(i),
                limits.max_bytes
            ));
        }
        if !cur.is_empty() && (cur.len() >= limits.max_requests || bytes + add > limits.max_bytes) {
            out.push((std::mem::take(&mut cur), bytes));
            bytes = per_body;
        }
        cur.push(i);
        bytes += add;
    }
    if !cur.is_empty() {
        out.push((cur, bytes));
    }
    Ok(out)
}

/// Halves of a batch (for the per-batch cost cap), each with its size recomputed.
pub fn halve(input: &Input, items: &[u32], overhead: (u64, u64)) -> [(Vec<u32>, u64); 2] {
    let mid = items.len() / 2;
    let size =
        |part: &[u32]| overhead.1 + part.iter().map(|&i| input.size(i) + overhead.0).sum::<u64>();
    let (a, b) = items.split_at(mid);
    [(a.to_vec(), size(a)), (b.to_vec(), size(b))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::runner::anthropic::Anthropic;
    use crate::runner::client::Client;
    use crate::runner::provider::Provider;

    fn input(n: usize) -> (tempfile::TempDir, Input, Anthropic) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let lines: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"custom_id":"r-{i}","params":{{"model":"m","max_tokens":1,"pad":"{}"}}}}"#,
                    "x".repeat(i % 7)
                )
            })
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let p = Anthropic {
            client: Client::new("http://127.0.0.1:1", Secret::new("k"), None).unwrap(),
            prefix: String::new(),
        };
        let input = crate::runner::input::load(&path, None, dir.path(), &p).unwrap();
        (dir, input, p)
    }

    #[test]
    fn batches_respect_both_limits_keep_order_and_report_their_exact_body_size() {
        let (_dir, input, p) = input(100);
        let all: Vec<u32> = (0..100).collect();
        let limits = Limits { max_requests: 30, max_bytes: 1_000 };
        let chunks = split(&input, &all, limits, p.body_overhead()).unwrap();
        let flat: Vec<u32> = chunks.iter().flat_map(|(c, _)| c.clone()).collect();
        assert_eq!(flat, all, "every item once, in order");
        for (items, bytes) in &chunks {
            let lines = input.lines(items).unwrap();
            let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let body = p.body(&refs);
            assert_eq!(body.len() as u64, *bytes, "the size is the real body's");
            assert!(items.len() <= 30 && *bytes <= 1_000);
            serde_json::from_slice::<serde_json::Value>(&body).unwrap();
        }
        assert!(chunks.len() >= 7, "the byte limit split further: {}", chunks.len());
        let tiny = Limits { max_requests: 10, max_bytes: 40 };
        assert!(split(&input, &all, tiny, p.body_overhead()).unwrap_err().contains("r-0"));
    }
}
