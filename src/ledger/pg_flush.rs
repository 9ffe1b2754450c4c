//! Group flush for PostgreSQL: why admission is not one WAL flush per submission.
//!
//! Every admission updates the same budget-window row, and a transaction holds that row
//! lock until its commit returns. With `synchronous_commit = on` that includes the WAL
//! flush (3-6 ms on this machine's disk), so admissions to one budget queued at one flush
//! each: about 500-700 a second, however many replicas. So the writes that lock window
//! rows (admission, release, settlement) commit on a pool whose connections run with
//! `synchronous_commit = off`: the row lock is released as soon as the commit record is
//! in the WAL buffers. Before the ledger call returns they wait here, until a synchronous
//! commit that started after theirs has flushed: the WAL is written in order, so that
//! flush carries theirs too. One such barrier runs at a time per replica and covers every
//! caller waiting for it, and PostgreSQL shares one fsync among the replicas' barriers, so
//! the disk sets the latency of a call, not the rate of admissions.
//!
//! `mark_submitted` locks only its own batches' rows, which no other write waits for, so
//! it commits synchronously instead: its commit waits for the flush itself (PostgreSQL
//! shares it with the barriers and other commits of the moment), one round trip where a
//! barrier after it made two.
//!
//! What a caller sees is unchanged: when an admission, release or settlement returns, it
//! is on disk, so nothing is forwarded upstream or answered on the strength of a commit
//! that a database crash could take back. What other sessions may see earlier (another
//! admission refused against a reservation that then is lost in a crash) errs only toward
//! refusing. [`Flush::wait`] is also how a replica makes durable what it has read before
//! it answers from it (a client's retry, see `Ledger::durable`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPool};
use tokio::sync::Mutex;

use super::{LedgerError, PING_IF_IDLE};

/// A statement whose synchronous commit flushes the WAL without touching a table: a
/// transactional logical message is a WAL record with a transaction id, so its commit
/// writes a commit record and waits for it to reach disk, and with it everything logged
/// before. (A read, or a bare `txid_current()`, logs nothing and commits without a flush.)
/// Any role may call it, at any `wal_level`.
const BARRIER: &str = "SELECT pg_logical_emit_message(true, 'batchcost', 'flush')";

/// The replica's flush barrier: tickets are handed out after a commit, and a barrier
/// that starts after a ticket was taken makes it durable.
pub(super) struct Flush {
    /// Connections with the default `synchronous_commit = on`.
    pool: PgPool,
    /// Tickets handed out so far.
    taken: AtomicU64,
    /// Every ticket up to `done` is durable. Held while a barrier runs, so the callers
    /// that arrive meanwhile queue (in order) for the next one.
    state: Mutex<State>,
}

struct State {
    done: u64,
    /// The barrier's own connection, taken out of the pool: barriers run one at a time,
    /// and a pooled one costs a round trip more each (sqlx pings a connection as it goes
    /// back). Dropped when a barrier on it fails; pinged first after an idle spell.
    conn: Option<(PgConnection, Instant)>,
}

impl Flush {
    pub(super) fn new(pool: PgPool) -> Self {
        Flush { pool, taken: AtomicU64::new(0), state: Mutex::new(State { done: 0, conn: None }) }
    }

    /// Returns once everything committed (or read) before the call is on disk.
    pub(super) async fn wait(&self) -> Result<(), LedgerError> {
        let ticket = self.taken.fetch_add(1, Ordering::SeqCst) + 1;
        let mut state = self.state.lock().await;
        if state.done >= ticket {
            return Ok(());
        }
        // Every ticket taken by now was taken after its commit returned, and so before the
        // barrier below starts: it covers them all. A failed barrier covers none; the next
        // caller in the queue runs its own.
        let covers = self.taken.load(Ordering::SeqCst);
        let mut conn = match state.conn.take() {
            Some((mut c, used)) if used.elapsed() >= PING_IF_IDLE => match c.ping().await {
                Ok(()) => c,
                Err(_) => self.pool.acquire().await?.detach(),
            },
            Some((c, _)) => c,
            None => self.pool.acquire().await?.detach(),
        };
        sqlx::query(BARRIER).execute(&mut conn).await?;
        state.conn = Some((conn, Instant::now()));
        state.done = covers;
        Ok(())
    }
}
