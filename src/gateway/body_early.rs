//! Reading a large body while work on it has begun. Pricing a 200 MB create took about
//! 80 ms after its last byte, on top of the time the body took to arrive, yet most of it
//! had arrived long before. So a body declared by `Content-Length` to be large goes to a
//! blocking thread piece by piece as it arrives: every [`PIECE`] bytes are split off the
//! buffer (no copy) and sent on, and the thread joins them back onto what it has (no copy
//! either: they were one buffer), so it can walk the body so far while the rest arrives.
//!
//! The size limit and body timeouts are those of [`super::body::read_limited_with`]:
//! this is the same read, only handing the buffer over in steps.

use std::sync::mpsc;

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::body::{interrupted, too_large};
use super::error::ApiError;

/// Bytes handed over at a time.
pub const PIECE: usize = 8 << 20;

enum Piece {
    More(BytesMut),
    Last(BytesMut),
}

/// A body on its way to a blocking thread: what has arrived so far, and the rest to come.
pub struct Early {
    head: BytesMut,
    rest: mpsc::Receiver<Piece>,
    complete: bool,
}

impl Early {
    /// The body so far.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Waits for the next piece and adds it to the head: `Some(true)` when that was the
    /// last (the head is the whole body), `None` if the read failed (the client went
    /// away, the body was too large or too slow: the request is answered with that error,
    /// and this thread's work is dropped).
    pub fn arrive(&mut self) -> Option<bool> {
        if self.complete {
            return Some(true);
        }
        let (piece, last) = match self.rest.recv().ok()? {
            Piece::More(p) => (p, false),
            Piece::Last(p) => (p, true),
        };
        // Split from one buffer, in order, and none grew past it: O(1).
        self.head.unsplit(piece);
        self.complete = last;
        Some(last)
    }

    /// The whole body, once [`Early::arrive`] said it is complete.
    pub fn into_body(self) -> Bytes {
        debug_assert!(self.complete, "the body is not complete yet");
        self.head.freeze()
    }
}

/// The body's length as its `Content-Length` declares it.
pub fn declared(headers: &HeaderMap) -> Option<u64> {
    headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// What [`read_limited_early`] read.
pub enum Read<T> {
    /// A body too small (or of unknown length) to hand over early: read whole.
    Whole(Bytes),
    /// What `work` returned for a body handed over as it arrived.
    Early(T),
}

/// The body, at most `limit` bytes, each chunk handed to `each` as it arrives. A body that
/// declares at least `early_min` bytes is given to `work` on a blocking thread as it
/// arrives (see the module doc); smaller ones are read whole.
pub async fn read_limited_early<T: Send + 'static>(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    mut each: impl FnMut(&[u8]),
    early_min: u64,
    work: impl FnOnce(Early) -> T + Send + 'static,
) -> Result<Read<T>, ApiError> {
    let declared = declared(headers);
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let early = declared.is_some_and(|n| n >= early_min);
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(64 * 1024).min(limit) as usize);
    let (mut read, mut sent) = (0u64, None);
    let mut work = Some(work);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(interrupted)?;
        read += chunk.len() as u64;
        if read > limit {
            return Err(too_large(limit));
        }
        each(&chunk);
        buf.extend_from_slice(&chunk);
        if !early || buf.len() < PIECE {
            continue;
        }
        match (&sent, work.take()) {
            (None, Some(work)) => {
                let (tx, rest) = mpsc::channel();
                let first = Early { head: buf.split(), rest, complete: false };
                sent = Some((tx, tokio::task::spawn_blocking(move || work(first))));
            }
            // The thread may have stopped listening (its work needs no more): read on.
            (Some((tx, _)), _) => drop(tx.send(Piece::More(buf.split()))),
            (None, None) => {}
        }
    }
    let Some((tx, task)) = sent else { return Ok(Read::Whole(buf.freeze())) };
    let _ = tx.send(Piece::Last(buf));
    let out = task.await.map_err(|e| ApiError::Internal(format!("body task failed: {e}")))?;
    Ok(Read::Early(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn chunked(parts: Vec<Vec<u8>>) -> Body {
        let s = futures_util::stream::iter(parts).map(|b| Ok::<_, std::io::Error>(Bytes::from(b)));
        Body::from_stream(s)
    }

    fn length(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_str(&n.to_string()).unwrap());
        h
    }

    /// Waits for every piece, noting the head's length after each.
    fn lengths(mut e: Early) -> Option<(Vec<usize>, Bytes)> {
        let mut seen = vec![e.head().len()];
        while !e.arrive()? {
            seen.push(e.head().len());
        }
        Some((seen, e.into_body()))
    }

    /// A body of `n` bytes counting up, in chunks of `each`.
    fn counting(n: usize, each: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let all: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let parts = all.chunks(each).map(<[u8]>::to_vec).collect();
        (all, parts)
    }

    #[tokio::test]
    async fn a_large_body_is_handed_over_piece_by_piece_and_whole() {
        let n = 3 * PIECE + 1234;
        let (all, parts) = counting(n, 1 << 20);
        let mut hashed: Vec<u8> = Vec::new();
        let read = read_limited_early(
            &length(n),
            chunked(parts),
            1 << 30,
            |c| hashed.extend(c),
            1,
            lengths,
        )
        .await
        .unwrap();
        let Read::Early(Some((seen, whole))) = read else { panic!("not handed over") };
        // A piece at each PIECE bytes (the rest follows as the last): the head only grows.
        assert_eq!(seen, vec![PIECE, 2 * PIECE, 3 * PIECE]);
        assert_eq!(&whole[..], &all[..]);
        assert_eq!(hashed, all);
    }

    #[tokio::test]
    async fn small_or_unsized_bodies_are_read_whole() {
        let (all, parts) = counting(PIECE + 10, 1 << 20);
        for (headers, min) in [(length(all.len()), all.len() as u64 + 1), (HeaderMap::new(), 1)] {
            let read =
                read_limited_early(&headers, chunked(parts.clone()), 1 << 30, |_| {}, min, |_| ())
                    .await
                    .unwrap();
            let Read::Whole(b) = read else { panic!("handed over a small body") };
            assert_eq!(&b[..], &all[..]);
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_after_a_hand_over_too() {
        // Declares what the limit allows but sends more: the limit still holds, and the
        // thread learns that the body will never be whole.
        let n = PIECE + 100;
        let (_, parts) = counting(n + 5_000, 1 << 20);
        let (tx, rx) = std::sync::mpsc::channel();
        let read = read_limited_early(
            &length(n),
            chunked(parts),
            n as u64,
            |_| {},
            1,
            move |e| {
                tx.send(lengths(e).is_none()).unwrap();
            },
        )
        .await;
        assert!(matches!(read, Err(ApiError::TooLarge(_))));
        assert!(rx.recv().unwrap(), "the thread was told the read failed");
    }
}
