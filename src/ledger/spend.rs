//! The reports' read: settled batches joined with their per-model usage, streamed in
//! submission order. A year of batches must not be loaded whole, so rows are pulled from
//! the database cursor as the consumer asks for them.

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use jiff::Timestamp;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{ColumnIndex, Decode, Row, Type};
use tokio::sync::mpsc;

use super::{LedgerError, ModelUsage, ts_from_db, ts_to_db};

/// One settled batch's usage of one model, with what reports need of the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendRow {
    pub sub_id: String,
    pub upstream_id: Option<String>,
    pub project: String,
    pub provider: String,
    /// Decides the day and the budget window the cost belongs to.
    pub submitted_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub settled_at: Option<Timestamp>,
    pub usage: ModelUsage,
}

/// Spend rows, ordered by `submitted_at`, then batch, then model: a batch's rows are
/// consecutive, and local days come in order.
pub type SpendStream = BoxStream<'static, Result<SpendRow, LedgerError>>;

/// Portable SQL ($N placeholders): both backends run it as is (on PostgreSQL the
/// `|| ''` is harmless).
/// `b.state || ''` keeps the planner off the (state, next_poll_at) index: through it,
/// SQLite sorts the whole range in a temporary B-tree before the first row comes out;
/// through the `submitted_at` index rows come out at once, already in order.
const SPEND_SQL: &str = "SELECT b.sub_id, b.upstream_id, b.project, b.provider, \
    b.submitted_at, b.ended_at, b.settled_at, u.model, u.input_tokens, u.output_tokens, \
    u.cache_write_5m, u.cache_write_1h, u.cache_read, u.web_searches, u.succeeded, u.errored, \
    u.canceled, u.expired, u.cost_pico, u.list_cost_pico \
    FROM batches b JOIN batch_usage u ON u.sub_id = b.sub_id \
    WHERE b.state || '' = 'settled' AND b.submitted_at >= $1 AND b.submitted_at < $2 \
    ORDER BY b.submitted_at, b.sub_id, u.model";

/// Rows handed over per channel message: fewer wake-ups than one row at a time, and still
/// a bounded amount in memory.
const CHUNK: usize = 256;

/// Streams the spend rows of batches submitted in `[from, to)`. A task owns the cursor so
/// the stream is `'static` (an HTTP body can hold it); a bounded channel keeps memory flat
/// and stops the query when the consumer goes away.
pub(super) fn sqlite_spend_rows(pool: SqlitePool, from: Timestamp, to: Timestamp) -> SpendStream {
    let (tx, stream) = channel();
    tokio::spawn(async move {
        let rows = sqlx::query(SPEND_SQL).bind(ts_to_db(from)).bind(ts_to_db(to)).fetch(&pool);
        pump(rows, tx).await;
    });
    stream
}

/// [`sqlite_spend_rows`] on PostgreSQL (the same statement).
pub(super) fn pg_spend_rows(pool: PgPool, from: Timestamp, to: Timestamp) -> SpendStream {
    let (tx, stream) = channel();
    tokio::spawn(async move {
        let rows = sqlx::query(SPEND_SQL).bind(ts_to_db(from)).bind(ts_to_db(to)).fetch(&pool);
        pump(rows, tx).await;
    });
    stream
}

type Chunk = Vec<Result<SpendRow, LedgerError>>;

fn channel() -> (mpsc::Sender<Chunk>, SpendStream) {
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (futures_util::stream::iter(chunk), rx))
    })
    .flatten()
    .boxed();
    (tx, stream)
}

/// Moves decoded rows from the cursor to the channel in chunks, stopping at the first error
/// or when the consumer is gone.
async fn pump<R>(
    mut rows: impl futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    tx: mpsc::Sender<Chunk>,
) where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut chunk = Vec::with_capacity(CHUNK);
    while let Some(r) = rows.next().await {
        let item = r.map_err(LedgerError::from).and_then(|r| spend_from_row(&r));
        let failed = item.is_err();
        chunk.push(item);
        if chunk.len() == CHUNK || failed {
            if tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).await.is_err() {
                return;
            }
            if failed {
                return;
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(chunk).await;
    }
}

fn spend_from_row<R>(r: &R) -> Result<SpendRow, LedgerError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let opt_ts = |c: &str| -> Result<Option<Timestamp>, LedgerError> {
        Ok(r.try_get::<Option<i64>, _>(c)?.map(ts_from_db))
    };
    Ok(SpendRow {
        sub_id: r.try_get("sub_id")?,
        upstream_id: r.try_get("upstream_id")?,
        project: r.try_get("project")?,
        provider: r.try_get("provider")?,
        submitted_at: ts_from_db(r.try_get("submitted_at")?),
        ended_at: opt_ts("ended_at")?,
        settled_at: opt_ts("settled_at")?,
        usage: super::rows::usage_from_row(r)?,
    })
}
