//! WAL checkpoints mostly off the write path. SQLite's automatic checkpoint runs inside
//! the commit that takes the WAL past 1,000 pages: that writer copies them all into the
//! database file and fsyncs it while it holds the one write lock, on the async worker
//! thread that committed, so every admission queued behind it waited for the copy and
//! the disk. Here both writer connections run with `wal_autocheckpoint = 0`, and:
//! - a thread of the ledger's own runs a PASSIVE checkpoint on a third connection once
//!   about 1,000 pages built up: it takes no write lock, so commits go on while it
//!   copies the bulk and syncs the file;
//! - the WAL file is only rewound from its start (and so kept from growing) by a write
//!   that finds it completely copied, which a checkpoint racing the writes never leaves
//!   it. So the next write after the thread's pass finishes the job under the write lock:
//!   a PASSIVE checkpoint of the few pages written meanwhile, and its sync.
//!
//! The thread is woken by writes (it cannot see pages per commit without a WAL hook,
//! which rusqlite offers only through unsafe FFI): each checkpoint reports how many
//! frames the WAL held, and the number of writes to wait for next is scaled to bring that
//! to `PAGES`. Only the write that makes that number wakes it: a wake per write was two
//! thread switches per create for a thread that went straight back to sleep.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

use super::super::LedgerError;

/// WAL frames to let build up between checkpoints: SQLite's own default.
const PAGES: u64 = 1_000;

#[derive(Default)]
struct State {
    /// Writes committed so far.
    writes: u64,
    /// The write count at which the thread wants waking.
    due_at: u64,
    /// The thread copied the bulk: the next write finishes the checkpoint.
    finish: bool,
    stop: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// The ledger's checkpoint thread; stopped and joined when dropped.
pub(super) struct Checkpointer {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing `file` (already in WAL mode).
    pub(super) fn start(file: &Path) -> Result<Checkpointer, LedgerError> {
        let conn = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let shared: Shared = Arc::default();
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ledger-checkpoint".into())
            .spawn(move || run(&conn, &theirs))
            .map_err(|e| LedgerError::Group(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer { shared, thread: Some(thread) })
    }

    /// Counts a write by a writer holding the write lock. True when a checkpoint the
    /// thread began waits to be finished: the caller then runs [`finish`] on its
    /// connection before it lets the lock go.
    #[must_use]
    pub(super) fn wrote(&self) -> bool {
        let (state, woken) = &*self.shared;
        let (finish, wake) = {
            let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
            s.writes += 1;
            (std::mem::take(&mut s.finish), s.writes == s.due_at)
        };
        if wake {
            woken.notify_one();
        }
        finish
    }
}

/// Finishes on the writer's `conn` a checkpoint the thread began (see the module doc).
pub(super) fn finish(conn: &Connection) {
    if let Err(e) = checkpoint(conn) {
        tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries");
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (state, woken) = &*self.shared;
        state.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        woken.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, shared: &Shared) {
    let (state, woken) = &**shared;
    // Writes to wait for before the next checkpoint, and the count at the last one.
    let (mut every, mut last) = (64u64, 0u64);
    loop {
        let (writes, stop) = {
            let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
            // Past due already (writes went on during the last pass): no wake will come.
            s.due_at = (last + every).max(s.writes + 1);
            while !s.stop && s.writes < last + every {
                s = woken.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            (s.writes, s.stop)
        };
        // A last one on the way out too, for what was written since.
        if writes > last {
            match checkpoint(conn) {
                Ok(frames) => {
                    every = next_every(every, writes - last, frames);
                    state.lock().unwrap_or_else(PoisonError::into_inner).finish = true;
                }
                // On the way out the files may be gone already (a test's directory);
                // whatever is left in the WAL is read back at the next open.
                Err(e) if stop => tracing::debug!(error = %e, "last WAL checkpoint failed"),
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries"),
            }
            last = writes;
        }
        if stop {
            return;
        }
    }
}

/// A PASSIVE checkpoint: the frames the WAL held.
fn checkpoint(conn: &Connection) -> Result<u64, rusqlite::Error> {
    let (_busy, log, _done): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(u64::try_from(log).unwrap_or(0))
}

/// How many writes to wait for next, given that `writes` writes left `frames` in the WAL.
fn next_every(every: u64, writes: u64, frames: u64) -> u64 {
    if frames == 0 {
        return (every * 2).min(PAGES);
    }
    (writes.max(1) * PAGES / frames).clamp(1, PAGES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_about_a_thousand_pages() {
        // 64 writes of 40 pages each: 25 writes make the thousand.
        assert_eq!(next_every(64, 64, 2_560), 25);
        // Writes of many pages: checkpoint after every one.
        assert_eq!(next_every(25, 25, 100_000), 1);
        // Tiny writes: wait longer, never past a thousand writes.
        assert_eq!(next_every(64, 64, 10), PAGES);
        // A WAL that held nothing (another connection had just checkpointed it).
        assert_eq!(next_every(64, 64, 0), 128);
    }

    /// A database in WAL mode that checkpoints only when told to, and its writer.
    fn wal_db() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("l.db");
        let w = Connection::open(&file).unwrap();
        w.pragma_update(None, "journal_mode", "WAL").unwrap();
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.execute_batch("CREATE TABLE t (x TEXT)").unwrap();
        (dir, file, w)
    }

    /// `n` rows of 3 kB, each write counted and followed, as in the ledger, by the
    /// writer's turn to finish a checkpoint the thread began.
    fn write_rows(w: &Connection, c: &Checkpointer, n: usize) {
        for i in 0..n {
            w.execute("INSERT INTO t VALUES (?1)", [format!("{i:0>3000}")]).unwrap();
            if c.wrote() {
                finish(w);
            }
        }
    }

    #[test]
    fn the_wal_stays_bounded_under_steady_writes() {
        let (_dir, file, w) = wal_db();
        let c = Checkpointer::start(&file).unwrap();
        // About 12 MB. Without the writer's turn to finish, the WAL never starts over
        // while writes race the thread's passes, and holds it all.
        write_rows(&w, &c, 4_000);
        drop(c);
        let wal = std::fs::metadata(file.with_extension("db-wal")).unwrap().len();
        assert!(wal < 6_000_000, "the WAL grew to {wal} bytes");
    }

    #[test]
    fn checkpoints_what_writes_left_in_the_wal() {
        let (_dir, file, w) = wal_db();
        let c = Checkpointer::start(&file).unwrap();
        write_rows(&w, &c, 200);
        drop(c);
        // With automatic checkpoints off only the thread copies pages into the database
        // file: the first 64 writes' rows at least are there.
        let size = std::fs::metadata(&file).unwrap().len();
        assert!(size > 64 * 3_000, "the database file holds the rows ({size} bytes)");
    }
}
