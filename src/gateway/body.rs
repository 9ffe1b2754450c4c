//! Reading a request body safely. Size: refuse by `Content-Length` before reading anything,
//! and stop reading the moment a chunked body passes the limit, so an oversized upload
//! never sits whole in memory. Time: every body is wrapped (by [`guard`], a middleware) so
//! a client that pauses too long between chunks, or trickles a body slower than the total
//! limit allows, is answered 408 instead of holding a connection and a buffer forever.

use std::sync::{Arc, mpsc};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::App;
use super::body_early::{Early, PIECE, Piece, Read};
use super::error::ApiError;

/// Why a wrapped body stopped yielding data.
#[derive(Debug, thiserror::Error)]
pub enum BodyTimeout {
    #[error("no request body data for {0:?}")]
    Idle(Duration),
    #[error("request body not received within {0:?}")]
    Total(Duration),
}

/// Middleware: applies the `[server]` body timeouts to every request body.
pub async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let s = &app.settings.server;
    let idle = Duration::from_secs(s.body_idle_timeout_secs);
    let total = Duration::from_secs(s.body_total_timeout_secs);
    next.run(req.map(|b| timed(b, idle, total))).await
}

/// `body`, failing with [`BodyTimeout`] when a chunk is `idle` late or the whole body is
/// not in after `total` (counted from now, when the headers are in).
pub fn timed(body: Body, idle: Duration, total: Duration) -> Body {
    if body.is_end_stream() {
        return body;
    }
    let deadline = Instant::now() + total;
    let stream = futures_util::stream::unfold(
        (body.into_data_stream(), false),
        move |(mut inner, failed)| async move {
            if failed {
                return None;
            }
            let until = (Instant::now() + idle).min(deadline);
            match tokio::time::timeout_at(until, inner.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), (inner, false))),
                Ok(Some(Err(e))) => Some((Err(axum::BoxError::from(e)), (inner, true))),
                Ok(None) => None,
                Err(_) => {
                    let e = if until == deadline {
                        BodyTimeout::Total(total)
                    } else {
                        BodyTimeout::Idle(idle)
                    };
                    Some((Err(e.into()), (inner, true)))
                }
            }
        },
    );
    Body::from_stream(stream)
}

/// The whole body, at most `limit` bytes.
pub async fn read_limited(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, ApiError> {
    read_limited_with(headers, body, limit, |_| {}).await
}

/// [`read_limited`], handing each chunk to `each` as it arrives, while it is still in the
/// cache and the client is still sending: a hash of a 200 MB body computed this way costs
/// the create nothing after the last byte, where a pass of its own took about 60 ms.
pub async fn read_limited_with(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    each: impl FnMut(&[u8]),
) -> Result<Bytes, ApiError> {
    match read_limited_early(headers, body, limit, each, u64::MAX, |_| ()).await? {
        Read::Whole(body) => Ok(body),
        // No body declares more than u64::MAX bytes.
        Read::Early(()) => Err(ApiError::Internal("a body was handed over unasked".into())),
    }
}

/// The body's length as its `Content-Length` declares it.
pub fn declared(headers: &HeaderMap) -> Option<u64> {
    headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// The body, at most `limit` bytes, each chunk handed to `each` as it arrives. A body that
/// declares at least `early_min` bytes is given to `work` on a blocking thread as it
/// arrives (see `body_early`); smaller ones are read whole. Every body is read here.
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
                let first = Early::new(buf.split(), rest);
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

/// A body past `limit` bytes: 413.
fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge(format!("request body exceeds the {} MB batch limit", limit / (1024 * 1024)))
}

/// A body read failure: 408 for our own timeouts, 400 for a connection cut mid-body.
fn interrupted(e: axum::Error) -> ApiError {
    // axum wraps a stream body's error once more for every `Body` layer: walk the chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<BodyTimeout>() {
            return ApiError::ClientTimeout(t.to_string());
        }
        cause = c.source();
    }
    ApiError::InvalidRequest("request body interrupted".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn chunks(parts: Vec<(u64, &'static [u8])>) -> Body {
        let s = futures_util::stream::iter(parts).then(|(delay_ms, bytes)| async move {
            tokio::time::sleep(ms(delay_ms)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(bytes))
        });
        Body::from_stream(s)
    }

    #[tokio::test]
    async fn a_body_that_keeps_coming_is_read_whole() {
        let body = timed(chunks(vec![(50, b"ab"), (100, b"cd"), (100, b"ef")]), ms(400), ms(5_000));
        let got = read_limited(&HeaderMap::new(), body, 100).await.unwrap();
        assert_eq!(&got[..], b"abcdef");
    }

    #[tokio::test]
    async fn each_chunk_is_seen_once_in_order() {
        let body = timed(chunks(vec![(0, b"ab"), (0, b"cd"), (0, b"ef")]), ms(400), ms(5_000));
        let mut seen = Vec::new();
        let got = read_limited_with(&HeaderMap::new(), body, 100, |c| seen.push(c.to_vec()))
            .await
            .unwrap();
        assert_eq!(&got[..], b"abcdef");
        assert_eq!(seen, vec![b"ab".to_vec(), b"cd".to_vec(), b"ef".to_vec()]);
    }

    /// The dedupe key hashed chunk by chunk is the key of the whole body that ledgers
    /// written before hold (`xxh3_128`), short bodies and long, however the body is cut.
    #[tokio::test]
    async fn a_hash_over_the_chunks_is_the_hash_of_the_body() {
        let whole: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for (len, cuts) in
            [(10, vec![3]), (240, vec![1, 100]), (100_000, vec![1, 64, 4096, 50_001])]
        {
            let data = whole[..len].to_vec();
            let mut parts = Vec::new();
            let mut from = 0;
            for c in cuts.iter().copied().chain([len]) {
                parts.push(Ok::<_, std::io::Error>(Bytes::copy_from_slice(&data[from..c])));
                from = c;
            }
            let body = Body::from_stream(futures_util::stream::iter(parts));
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            let got =
                read_limited_with(&HeaderMap::new(), body, 1 << 20, |c| h.update(c)).await.unwrap();
            assert_eq!(&got[..], &data[..]);
            assert_eq!(h.digest128(), xxhash_rust::xxh3::xxh3_128(&data), "{len} bytes");
        }
    }

    #[tokio::test]
    async fn a_stalled_body_is_a_408_after_the_idle_timeout() {
        let body = timed(chunks(vec![(0, b"ab"), (2_000, b"cd")]), ms(200), ms(5_000));
        let err = read_limited(&HeaderMap::new(), body, 100).await.unwrap_err();
        assert_eq!(err.status().as_u16(), 408);
        assert_eq!(err.to_string(), "no request body data for 200ms");
    }

    #[tokio::test]
    async fn a_trickled_body_is_a_408_after_the_total_timeout() {
        let parts = (0..40).map(|_| (100, &b"x"[..])).collect();
        let body = timed(chunks(parts), ms(400), ms(1_000));
        let err = read_limited(&HeaderMap::new(), body, 100).await.unwrap_err();
        assert_eq!(err.status().as_u16(), 408);
        assert_eq!(err.to_string(), "request body not received within 1s");
    }

    #[tokio::test]
    async fn an_oversized_body_stops_at_the_limit() {
        let mut h = HeaderMap::new();
        h.insert("content-length", "101".parse().unwrap());
        let err = read_limited(&h, Body::from(vec![0u8; 101]), 100).await.unwrap_err();
        assert_eq!(err.status().as_u16(), 413);
        let err = read_limited(&HeaderMap::new(), Body::from(vec![0u8; 101]), 100).await;
        assert_eq!(err.unwrap_err().status().as_u16(), 413);
    }
}
