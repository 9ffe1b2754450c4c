//! Streaming request bodies: a blocking `Read` over the chunks the async side forwards
//! (so serde can parse a body while it arrives, never holding it whole), and draining a
//! refused body so a client that is still uploading gets the answer, not a reset.

use std::io::Read;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use tokio::sync::mpsc;

/// When refusing a body, keep reading (and discarding) this much so the client, which
/// sends its whole body before it reads, gets the answer instead of a reset connection.
pub const DRAIN_LIMIT: u64 = 1024 * 1024 * 1024;

/// Discards the rest of a body, up to [`DRAIN_LIMIT`] bytes in all.
pub async fn drain<S, E>(stream: &mut S, mut total: u64)
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
{
    while let Some(Ok(chunk)) = stream.next().await {
        total += chunk.len() as u64;
        if total > DRAIN_LIMIT {
            break;
        }
    }
}

/// Blocking `Read` over the chunks the async side forwards.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader { rx, cur: Bytes::new() }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.cur = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}
