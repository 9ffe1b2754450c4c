//! Reading a large body while work on it has begun. Pricing a 200 MB create took about
//! 80 ms after its last byte, on top of the time the body took to arrive, yet most of it
//! had arrived long before. So a body declared by `Content-Length` to be large goes to a
//! blocking thread piece by piece as it arrives: every [`PIECE`] bytes are split off the
//! buffer (no copy) and sent on, and the thread joins them back onto what it has (no copy
//! either: they were one buffer), so it can walk the body so far while the rest arrives.
//!
//! The read itself is [`super::body::read_limited_early`], the one read of every body,
//! with its size limit and timeouts: this module is what it hands over.

use std::sync::mpsc;

use bytes::{Bytes, BytesMut};

/// Bytes handed over at a time.
pub(super) const PIECE: usize = 8 << 20;

pub(super) enum Piece {
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
    /// The first piece, `head`; the rest come through `rest`.
    pub(super) fn new(head: BytesMut, rest: mpsc::Receiver<Piece>) -> Self {
        Early { head, rest, complete: false }
    }

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

/// What [`super::body::read_limited_early`] read.
pub enum Read<T> {
    /// A body too small (or of unknown length) to hand over early: read whole.
    Whole(Bytes),
    /// What `work` returned for a body handed over as it arrived.
    Early(T),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::body::read_limited_early;
    use crate::gateway::error::ApiError;
    use axum::body::Body;
    use axum::http::{HeaderMap, HeaderValue};
    use futures_util::StreamExt;

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
