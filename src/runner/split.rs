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
