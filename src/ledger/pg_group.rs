//! A replica's queue of like writes for PostgreSQL: every write of one kind waiting at one
//! moment goes to the server in one statement (admissions, `mark_submitted`). Each
//! statement and its commit cost the server and the gateway about the same whether it
//! carries one write or thirty, and on the create path they were most of the cost.
//!
//! Like SQLite's group commit there is no writer task: whichever waiting caller becomes
//! leader first sends the whole queue, its own write among them. The leader's calls run
//! in a task of their own, so a client that hangs up mid-call cannot leave the others of
//! its group without an answer.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex as SyncMutex, PoisonError};

use sqlx::postgres::PgPool;
use tokio::sync::{Mutex, oneshot};

use super::super::{LedgerError, LedgerFuture};

/// One kind of write that can go to the server in groups.
pub(super) trait Call: 'static {
    type Job: Send + Sync + 'static;
    type Out: Send + 'static;
    /// Most writes in one statement. A group holds every row it locks until it commits,
    /// so other replicas' groups wait for all of it.
    const MOST: usize;

    /// One statement for `jobs`: one outcome per job, in their order. An error the
    /// server raised for the statement (`sqlx::Error::Database`) is taken to be one
    /// job's fault: the group is then sent again one job at a time.
    fn call<'a>(pool: &'a PgPool, jobs: &'a [&'a Self::Job]) -> LedgerFuture<'a, Vec<Self::Out>>;

    /// The order jobs take within a group (a lock order, say).
    fn order(_a: &Self::Job, _b: &Self::Job) -> Ordering {
        Ordering::Equal
    }
}

struct Queued<C: Call> {
    job: C::Job,
    tx: oneshot::Sender<Result<C::Out, LedgerError>>,
}

type Queue<C> = Arc<SyncMutex<Vec<Queued<C>>>>;

/// The replica's queue for one kind of write.
pub(super) struct Group<C: Call> {
    queue: Queue<C>,
    /// Held while a group is at the server.
    leader: Arc<Mutex<()>>,
}

impl<C: Call> Default for Group<C> {
    fn default() -> Self {
        Group { queue: Arc::default(), leader: Arc::default() }
    }
}

impl<C: Call> Group<C> {
    /// Sends `job` with whatever else is waiting; its own outcome.
    pub(super) async fn send(&self, pool: &PgPool, job: C::Job) -> Result<C::Out, LedgerError> {
        let (tx, mut rx) = oneshot::channel();
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push(Queued { job, tx });
        loop {
            tokio::select! {
                biased;
                out = &mut rx => return out.unwrap_or_else(|_| {
                    Err(LedgerError::Group("the write was dropped unanswered".into()))
                }),
                held = self.leader.clone().lock_owned() => {
                    let (pool, queue) = (pool.clone(), Arc::clone(&self.queue));
                    // Errors reach each caller through its channel; a panic drops the
                    // senders.
                    let _ = tokio::spawn(async move {
                        // Until the queue is empty: a job whose caller hung up before
                        // leading is sent too, not left for whenever the next write comes.
                        loop {
                            let jobs = take::<C>(&queue);
                            if jobs.is_empty() {
                                break;
                            }
                            run::<C>(&pool, jobs).await;
                        }
                        drop(held);
                    })
                    .await;
                }
            }
        }
    }
}

/// Up to `C::MOST` jobs, the oldest first; the rest wait for the next call.
fn take<C: Call>(queue: &SyncMutex<Vec<Queued<C>>>) -> Vec<Queued<C>> {
    let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
    let n = q.len().min(C::MOST);
    let rest = q.split_off(n);
    std::mem::replace(&mut *q, rest)
}

/// Sends `jobs` as one group and answers each. A group the server refused as a whole (an
/// error in one job aborts the statement, and with it the group's transaction) is sent
/// again one job at a time, so only the one at fault hears the error.
async fn run<C: Call>(pool: &PgPool, mut jobs: Vec<Queued<C>>) {
    jobs.sort_by(|a, b| C::order(&a.job, &b.job));
    let refs: Vec<&C::Job> = jobs.iter().map(|j| &j.job).collect();
    let outs = C::call(pool, &refs).await;
    drop(refs);
    match outs {
        Ok(outs) if outs.len() == jobs.len() => {
            for (j, out) in jobs.into_iter().zip(outs) {
                let _ = j.tx.send(Ok(out));
            }
        }
        Ok(outs) => {
            let why = format!("a group of {} writes answered {}", jobs.len(), outs.len());
            for j in jobs {
                let _ = j.tx.send(Err(LedgerError::Range(why.clone())));
            }
        }
        Err(LedgerError::Db(sqlx::Error::Database(_))) if jobs.len() > 1 => {
            for j in jobs {
                let out = C::call(pool, &[&j.job]).await.and_then(|mut o| {
                    o.pop().ok_or_else(|| LedgerError::Range("a write answered nothing".into()))
                });
                let _ = j.tx.send(out);
            }
        }
        Err(e) if jobs.len() == 1 => {
            let _ = jobs.remove(0).tx.send(Err(e));
        }
        Err(e) => {
            let why = e.to_string();
            for j in jobs {
                let _ = j.tx.send(Err(LedgerError::Group(why.clone())));
            }
        }
    }
}
