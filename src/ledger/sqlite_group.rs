//! Group commit for the in-place SQLite writes (issue 17).
//!
//! SQLite has one writer, so concurrent admissions queue for it anyway. Committing each
//! on its own writes its pages to the WAL once per admission, and the window row, the
//! dedupe index and the batches table's last leaf are the same few pages every time.
//! Here every write waiting when the writer comes free runs in one transaction, each in a
//! savepoint of its own: a write that refuses (budget, duplicate) or fails undoes only its
//! own statements, the others commit together, and no caller hears its outcome before
//! the commit that makes it true. A commit that fails fails every write of its group.
//!
//! There is no writer thread: whichever waiting caller gets the lock on the writer
//! connection first runs the whole queue, its own write among them, so an idle ledger
//! costs one lock per write, as before, and a busy one one commit per group.

use std::sync::{Mutex, PoisonError};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::super::LedgerError;

/// A write waiting for its group.
trait Pending: Send {
    /// Runs it inside the group's transaction; false: undo what it wrote.
    fn run(&mut self, c: &Connection) -> bool;
    /// The group is committed (or not): answers the caller.
    fn finish(self: Box<Self>, committed: &Result<(), String>);
}

struct Job<T, F> {
    f: Option<F>,
    out: Option<Result<T, LedgerError>>,
    tx: Option<oneshot::Sender<Result<T, LedgerError>>>,
}

impl<T, F> Pending for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<(T, bool), LedgerError> + Send,
{
    fn run(&mut self, c: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        match f(c) {
            Ok((t, keep)) => {
                self.out = Some(Ok(t));
                keep
            }
            Err(e) => {
                self.out = Some(Err(e));
                false
            }
        }
    }

    fn finish(mut self: Box<Self>, committed: &Result<(), String>) {
        let out = match (self.out.take(), committed) {
            // Its own failure was undone on its own: that is its answer either way.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(t)), Ok(())) => Ok(t),
            (_, Err(why)) => Err(LedgerError::Group(why.clone())),
            (None, Ok(())) => Err(LedgerError::Group("the write was never run".into())),
        };
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(out);
        }
    }
}

/// The queue of writes waiting for the writer.
#[derive(Default)]
pub(super) struct Group {
    queue: Mutex<Vec<Box<dyn Pending>>>,
}

/// What a caller waits on.
pub(super) type Answer<T> = oneshot::Receiver<Result<T, LedgerError>>;

impl Group {
    /// Queues `f` (its writes, and whether to keep them); the answer comes once its group
    /// has committed.
    pub(super) fn push<T, F>(&self, f: F) -> Answer<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<(T, bool), LedgerError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job { f: Some(f), out: None, tx: Some(tx) };
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push(Box::new(job));
        rx
    }

    /// Runs every queued write in one transaction and answers each. The caller holds the
    /// writer; how many writes the group had.
    pub(super) fn run_all(&self, c: &Connection) -> usize {
        let mut jobs =
            std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        if jobs.is_empty() {
            return 0;
        }
        let committed = commit(c, &mut jobs);
        if committed.is_err() && !c.is_autocommit() {
            let _ = c.execute_batch("ROLLBACK");
        }
        let n = jobs.len();
        for j in jobs {
            j.finish(&committed);
        }
        n
    }
}

/// One statement without a result, its text prepared once per connection.
fn step(c: &Connection, sql: &str) -> Result<(), String> {
    let run = || c.prepare_cached(sql)?.execute([]).map(|_| ());
    run().map_err(|e: rusqlite::Error| format!("{sql}: {e}"))
}

fn commit(c: &Connection, jobs: &mut [Box<dyn Pending>]) -> Result<(), String> {
    step(c, "BEGIN IMMEDIATE")?;
    // A lone write needs no savepoint: undoing it is undoing the transaction. A savepoint
    // copies every page it touches into the statement journal before writing it, which
    // was an eighth of the gateway's CPU per small create (measured with `perf`), and an
    // idle ledger's groups are all of one.
    let lone = jobs.len() == 1;
    let mut undo = false;
    for j in jobs.iter_mut() {
        if !lone {
            step(c, "SAVEPOINT job")?;
        }
        let keep = j.run(c);
        // SQLite ends the whole transaction itself on some errors (a full disk, I/O):
        // what the earlier writes did is gone with it.
        if c.is_autocommit() {
            return Err("SQLite rolled the group's transaction back".into());
        }
        if lone {
            undo = !keep;
            continue;
        }
        if !keep {
            step(c, "ROLLBACK TO job")?;
        }
        step(c, "RELEASE job")?;
    }
    step(c, if undo { "ROLLBACK" } else { "COMMIT" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)").unwrap();
        c
    }

    fn insert(v: i64, keep: bool) -> impl FnOnce(&Connection) -> Result<(i64, bool), LedgerError> {
        move |c| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok((v, keep))
        }
    }

    fn values(c: &Connection) -> Vec<i64> {
        let mut st = c.prepare("SELECT v FROM t ORDER BY v").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn each_write_keeps_or_undoes_only_its_own_statements() {
        let (c, g) = (db(), Group::default());
        let kept = g.push(insert(1, true));
        let refused = g.push(insert(2, false));
        // Violates the unique constraint against the first write of the same group.
        let failed = g.push(insert(1, true));
        let later = g.push(insert(3, true));
        assert_eq!(g.run_all(&c), 4);
        assert_eq!(values(&c), [1, 3]);
        assert_eq!(kept.blocking_recv().unwrap().unwrap(), 1);
        // A refusal is an answer, not an error: its writes are simply not kept.
        assert_eq!(refused.blocking_recv().unwrap().unwrap(), 2);
        let e = failed.blocking_recv().unwrap().unwrap_err();
        assert!(e.to_string().contains("UNIQUE"), "{e}");
        assert_eq!(later.blocking_recv().unwrap().unwrap(), 3);
        assert!(c.is_autocommit(), "the group's transaction is over");
    }

    #[test]
    fn a_commit_that_fails_fails_every_write_of_its_group() {
        let (c, g) = (db(), Group::default());
        // A deferred foreign key fails only at COMMIT, after every write has run.
        c.execute_batch(
            "PRAGMA foreign_keys = ON; CREATE TABLE p (id INTEGER PRIMARY KEY); \
             CREATE TABLE r (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .unwrap();
        let first = g.push(insert(1, true));
        let dangling = g.push(|c: &Connection| {
            c.execute("INSERT INTO r (p) VALUES (42)", [])?;
            Ok(((), true))
        });
        assert_eq!(g.run_all(&c), 2);
        assert!(values(&c).is_empty(), "nothing of the group was committed");
        for e in [first.blocking_recv().unwrap().err(), dangling.blocking_recv().unwrap().err()] {
            let e = e.expect("an error for every write");
            assert!(e.to_string().contains("group commit failed"), "{e}");
        }
        assert!(c.is_autocommit());
        // The writer is usable again afterwards.
        let next = g.push(insert(7, true));
        g.run_all(&c);
        assert_eq!(next.blocking_recv().unwrap().unwrap(), 7);
        assert_eq!(values(&c), [7]);
    }

    #[test]
    fn a_lone_write_keeps_or_undoes_all_of_its_statements() {
        let (c, g) = (db(), Group::default());
        let two = |a: i64, b: i64, keep: bool| {
            move |c: &Connection| {
                c.execute("INSERT INTO t (v) VALUES (?1)", [a])?;
                c.execute("INSERT INTO t (v) VALUES (?1)", [b])?;
                Ok((a, keep))
            }
        };
        let refused = g.push(two(1, 2, false));
        assert_eq!(g.run_all(&c), 1);
        assert_eq!(refused.blocking_recv().unwrap().unwrap(), 1);
        assert!(values(&c).is_empty(), "a refusal leaves nothing of its own behind");
        // Fails on its second statement: the first is undone with it.
        c.execute("INSERT INTO t (v) VALUES (4)", []).unwrap();
        let failed = g.push(two(3, 4, true));
        g.run_all(&c);
        let e = failed.blocking_recv().unwrap().unwrap_err();
        assert!(e.to_string().contains("UNIQUE"), "{e}");
        assert_eq!(values(&c), [4]);
        let kept = g.push(two(5, 6, true));
        g.run_all(&c);
        assert_eq!(kept.blocking_recv().unwrap().unwrap(), 5);
        assert_eq!(values(&c), [4, 5, 6]);
        assert!(c.is_autocommit(), "every transaction is over");
    }

    #[test]
    fn an_empty_queue_runs_nothing() {
        let (c, g) = (db(), Group::default());
        assert_eq!(g.run_all(&c), 0);
        assert!(c.is_autocommit());
    }
}
