//! From a stream of ledger rows to a stream of output chunks. Pull-driven: a chunk is
//! produced only when the consumer (stdout or an HTTP body) asks for one, so a slow reader
//! slows the query instead of filling memory.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::ReportError;
use crate::ledger::{SpendRow, SpendStream};

/// Output is handed on in chunks of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// One output form: appends text for the rows it is given.
pub trait Encoder: Send {
    fn begin(&mut self, out: &mut Vec<u8>);
    fn row(&mut self, row: &SpendRow, out: &mut Vec<u8>) -> Result<(), ReportError>;
    fn finish(&mut self, out: &mut Vec<u8>);
}

struct State {
    rows: SpendStream,
    enc: Box<dyn Encoder>,
    started: bool,
}

/// Encodes `rows` lazily. An error ends the stream with that error (an HTTP body is then
/// cut off rather than looking complete).
pub fn render(
    rows: SpendStream,
    enc: Box<dyn Encoder>,
) -> BoxStream<'static, Result<Bytes, ReportError>> {
    let start = State { rows, enc, started: false };
    futures_util::stream::unfold(Some(start), |state| async move {
        let mut st = state?;
        let mut out = Vec::with_capacity(CHUNK_BYTES + 4096);
        if !st.started {
            st.enc.begin(&mut out);
            st.started = true;
        }
        loop {
            match st.rows.next().await {
                Some(Ok(row)) => {
                    if let Err(e) = st.enc.row(&row, &mut out) {
                        return Some((Err(e), None));
                    }
                    if out.len() >= CHUNK_BYTES {
                        return Some((Ok(Bytes::from(out)), Some(st)));
                    }
                }
                Some(Err(e)) => return Some((Err(e.into()), None)),
                None => {
                    st.enc.finish(&mut out);
                    return Some((Ok(Bytes::from(out)), None));
                }
            }
        }
    })
    .boxed()
}
