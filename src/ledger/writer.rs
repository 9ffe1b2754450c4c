//! Group commit: one thread owns the ledger's only writer connection and runs every write
//! waiting for it in one transaction, each write in its own savepoint.
//!
//! Why: through sqlx every statement was a round trip to the driver's own thread (about 63
//! thread switches per create), so admission was bound by handoffs, not by SQLite. Here a
//! write is one handoff there and one back, whatever it runs, and a busy gateway pays one
//! commit for all the writes that queued while the previous group ran.
//!
//! Guarantees are those of one transaction per write:
//! - Each job is all-or-nothing on its own: it runs in a savepoint that is released only if
//!   the job says so ([`Step::Keep`]); a refused admission or a failed statement rolls back
//!   to it, leaving the others in the group untouched.
//! - Jobs run one at a time in arrival order on one connection, so a conditional statement
//!   (the budget check) sees every earlier job's effect: the exact-capacity race stays exact.
//! - No caller hears of its write before the group's `COMMIT` returned; if the commit (or
//!   SQLite rolling the transaction back by itself) fails, every job of the group gets the
//!   error and none of them happened. Nothing acknowledged is lost after `kill -9` (WAL).
//!
//! PostgreSQL can use the same shape with a pooled connection instead of a thread: one task
//! draining the queue, `BEGIN`, `SAVEPOINT j` / `RELEASE` or `ROLLBACK TO` per job, `COMMIT`,
//! then the replies. There the win is fewer commits (each a WAL flush) rather than fewer
//! thread switches; jobs would be async closures over a `&mut PgConnection`, and a
//! serialization failure of the group is retried by re-running its jobs.

use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::LedgerError;

/// Most jobs in one transaction: bounds the latency of the last one in a burst.
const MAX_GROUP: usize = 256;

/// What a job decided: keep its changes, or roll them back (a refusal is not an error).
pub enum Step<T> {
    Keep(T),
    Discard(T),
}

/// Runs after the group's commit with its outcome and answers the caller.
type Reply = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// One queued write.
trait Job: Send {
    /// Runs the write in its savepoint; the reply waits for the commit.
    fn run(self: Box<Self>, conn: &Connection) -> Reply;
    /// Answers with `msg` without running (the transaction could not start).
    fn fail(self: Box<Self>, msg: &str);
}

struct Write<F, T> {
    f: F,
    tx: oneshot::Sender<Result<T, LedgerError>>,
}

impl<T, F> Job for Write<F, T>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<Step<T>, LedgerError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Reply {
        let Write { f, tx } = *self;
        let out = in_savepoint(conn, f);
        Box::new(move |commit| {
            let _ = tx.send(match commit {
                Ok(()) => out,
                Err(e) => Err(LedgerError::Writer(e.to_string())),
            });
        })
    }

    fn fail(self: Box<Self>, msg: &str) {
        let _ = self.tx.send(Err(LedgerError::Writer(msg.to_string())));
    }
}

/// Handle to the writer thread; dropping the last one ends the thread.
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the thread that owns `conn` (already configured by the caller).
    pub fn start(conn: Connection) -> Result<Writer, LedgerError> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(conn, jobs))
            .map_err(|e| LedgerError::Writer(format!("cannot start the ledger writer: {e}")))?;
        Ok(Writer { queue })
    }

    /// Runs `f` in the next group, in its own savepoint; answers once the group committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Step<T>, LedgerError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Box::new(Write { f, tx }))
            .map_err(|_| LedgerError::Writer("the ledger writer stopped".into()))?;
        rx.await.map_err(|_| LedgerError::Writer("the ledger writer stopped".into()))?
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<Step<T>, LedgerError>,
) -> Result<T, LedgerError> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    let out = f(conn);
    if conn.is_autocommit() {
        // SQLite rolled the whole transaction back (disk full, I/O error): the group's
        // loop sees it too and fails every job in it.
        return out.map(|s| match s {
            Step::Keep(v) | Step::Discard(v) => v,
        });
    }
    match out {
        Ok(Step::Keep(v)) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
            Ok(v)
        }
        Ok(Step::Discard(v)) => {
            rollback_to(conn)?;
            Ok(v)
        }
        Err(e) => {
            rollback_to(conn)?;
            Err(e)
        }
    }
}

fn rollback_to(conn: &Connection) -> Result<(), LedgerError> {
    conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
    conn.prepare_cached("RELEASE job")?.execute([])?;
    Ok(())
}

/// The writer thread: waits for a job, takes every other one already waiting, and runs
/// them all in one transaction.
fn run(conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        run_group(&conn, group);
    }
}

fn run_group(conn: &Connection, group: Vec<Box<dyn Job>>) {
    let mut replies: Vec<Reply> = Vec::with_capacity(group.len());
    let mut open = false;
    for job in group {
        if !open {
            if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                job.fail(&format!("ledger transaction could not start: {e}"));
                continue;
            }
            open = true;
        }
        replies.push(job.run(conn));
        if conn.is_autocommit() {
            // The transaction is gone, and with it every job's changes so far.
            let msg = "the ledger transaction was rolled back by the database".to_string();
            for r in replies.drain(..) {
                r(Err(&msg));
            }
            open = false;
        }
    }
    if !open {
        return;
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for r in replies {
                r(Ok(()));
            }
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            let msg = format!("ledger commit failed: {e}");
            for r in replies {
                r(Err(&msg));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        (Writer::start(conn).unwrap(), dir)
    }

    fn count(dir: &tempfile::TempDir) -> Vec<i64> {
        let c = Connection::open(dir.path().join("w.db")).unwrap();
        let mut s = c.prepare("SELECT x FROM t ORDER BY x").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[tokio::test]
    async fn each_job_in_a_group_stands_or_falls_alone() {
        let (w, dir) = writer();
        // Queued together, so they share groups: kept, discarded and failing jobs mixed.
        let jobs = (0..60i64).map(|x| {
            w.write(move |c| {
                c.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
                match x % 3 {
                    0 => Ok(Step::Keep(x)),
                    1 => Ok(Step::Discard(x)),
                    // A second insert of the same key fails after the first succeeded:
                    // the job's own first insert must be undone too.
                    _ => c
                        .execute("INSERT INTO t (x) VALUES (?1)", [x])
                        .map(|_| Step::Keep(x))
                        .map_err(Into::into),
                }
            })
        });
        let out = futures_util::future::join_all(jobs).await;
        for (x, r) in out.iter().enumerate() {
            match x % 3 {
                0 | 1 => assert_eq!(r.as_ref().ok(), Some(&(x as i64))),
                _ => assert!(matches!(r, Err(LedgerError::Sqlite(_))), "{x}: {r:?}"),
            }
        }
        let kept: Vec<i64> = (0..60).filter(|x| x % 3 == 0).collect();
        assert_eq!(count(&dir), kept);
    }

    #[tokio::test]
    async fn a_job_sees_every_earlier_job_of_its_group() {
        let (w, dir) = writer();
        // Each job takes the next free number: no two may read the same maximum.
        let jobs = (0..50).map(|_| {
            w.write(|c| {
                let next: i64 =
                    c.query_row("SELECT COALESCE(MAX(x), 0) + 1 FROM t", [], |r| r.get(0))?;
                c.execute("INSERT INTO t (x) VALUES (?1)", [next])?;
                Ok(Step::Keep(next))
            })
        });
        let mut got: Vec<i64> =
            futures_util::future::join_all(jobs).await.into_iter().map(Result::unwrap).collect();
        got.sort();
        assert_eq!(got, (1..=50).collect::<Vec<_>>());
        assert_eq!(count(&dir), got);
    }
}
