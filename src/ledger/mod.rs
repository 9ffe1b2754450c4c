//! The ledger: every batch, its worst-case hold, its settled cost, and the budget windows
//! they count against. It knows no HTTP. Budget admission and settlement are each one
//! database transaction whose decisive step is a single conditional statement, so the same
//! interface works for several replicas on PostgreSQL.

pub mod files;
pub mod migrate;
mod postgres;
mod refusals;
mod rows;
mod spend;
mod sql;
mod sqlite;
mod sqlite_files;
mod sqlite_outbox;
mod sqlite_workflow;
pub mod workflow;

use std::collections::{HashMap, HashSet};

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use serde::Serialize;

use crate::config::Period;
use crate::money::Money;

pub use migrate::{Backend, SchemaState};
pub use postgres::PgLedger;
pub use refusals::{BatchFilter, ListState, Refusal};
pub use spend::{SpendRow, SpendStream};
pub use sqlite::SqliteLedger;

/// What a ledger call returns.
pub type LedgerFuture<'a, T> = BoxFuture<'a, Result<T, LedgerError>>;

/// Ledger failures.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database error: {0}")]
    Db(#[from] sqlx::Error),
    /// From the in-place SQLite writer (`sqlite_inplace.rs`).
    #[error("ledger database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("ledger value out of range: {0}")]
    Range(String),
    /// The SQLite group commit a write was part of did not commit (`sqlite_group.rs`).
    #[error("ledger database error: the group commit failed: {0}")]
    Group(String),
    #[error("ledger storage url not supported: {0}")]
    Url(String),
    /// This backend does not implement the operation yet.
    #[error("this ledger backend does not support {0} yet")]
    Unsupported(&'static str),
    #[error("ledger schema: {0}")]
    Schema(String),
    #[error("ledger migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A batch's next poll, and what its last one saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollPlan {
    pub sub_id: String,
    pub next_poll_at: Timestamp,
    pub attempts: u32,
    /// None keeps the status recorded before.
    pub last_status: Option<String>,
    pub error: Option<String>,
}

/// A replica's hold on batches it works on: the owner (a replica id, unique per process)
/// and until when. Another replica may take a batch whose lease ended before its `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub now: Timestamp,
    pub until: Timestamp,
}

/// A batch's worst case, held against every budget that applies until it settles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub usd: Money,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// One budget's window that a submission counts against, with the limits in force now.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRef {
    pub budget: String,
    pub project: String,
    pub period: Period,
    pub start: Timestamp,
    pub end: Timestamp,
    pub limit: Option<Money>,
    pub limit_input_tokens: Option<u64>,
    pub limit_output_tokens: Option<u64>,
    /// What this window holds when not the submission's whole worst case: a budget's
    /// `models` filter selects only part of the batch, or `hold = "calibrated"` holds
    /// less. `None`: the submission's whole hold.
    pub hold: Option<Hold>,
}

/// A window's totals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowState {
    pub budget: String,
    pub project: String,
    pub period: Period,
    pub start: Timestamp,
    pub end: Timestamp,
    pub limit: Option<Money>,
    pub spent: Money,
    pub reserved: Money,
    pub limit_input_tokens: Option<u64>,
    pub spent_input_tokens: u64,
    pub reserved_input_tokens: u64,
    pub limit_output_tokens: Option<u64>,
    pub spent_output_tokens: u64,
    pub reserved_output_tokens: u64,
}

/// A submission about to be sent upstream.
#[derive(Clone, Debug)]
pub struct NewSubmission {
    pub sub_id: String,
    pub project: String,
    pub provider: String,
    pub submitted_at: Timestamp,
    pub request_count: u64,
    pub body_hash: String,
    pub custom_id_fingerprint: u64,
    pub hold: Hold,
    pub windows: Vec<WindowRef>,
    /// The estimate as JSON, kept for `/api/batches/{id}`.
    pub estimate_json: String,
    /// An identical body from the same project submitted at or after this instant is a
    /// client retry.
    pub dedupe_since: Timestamp,
    /// The replica about to create it upstream: no other replica's recovery touches the
    /// submission while this lease lives. `None`: recovery may take it at once.
    pub lease: Option<Lease>,
    /// Per-model bounds for calibrated holds, kept with the batch in its admission.
    pub bounds: Vec<workflow::ModelBound>,
}

/// Outcome of [`Ledger::admit`].
#[derive(Debug)]
pub enum Admit {
    Admitted,
    /// The first window that could not take the hold, as it stood.
    Refused(Box<WindowState>),
    /// The same body was submitted moments ago: the client is retrying.
    Duplicate(Box<BatchRecord>),
}

/// Where a batch is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Reserved; the upstream has not (yet) confirmed it.
    Submitting,
    /// Accepted upstream, not yet settled.
    InFlight,
    Settled,
    /// The upstream refused it; its hold was released.
    Failed,
}

impl BatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Submitting => "submitting",
            BatchState::InFlight => "in_flight",
            BatchState::Settled => "settled",
            BatchState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "submitting" => BatchState::Submitting,
            "in_flight" => BatchState::InFlight,
            "settled" => BatchState::Settled,
            "failed" => BatchState::Failed,
            _ => return None,
        })
    }
}

/// One batch as the ledger holds it.
#[derive(Clone, Debug, Serialize)]
pub struct BatchRecord {
    pub sub_id: String,
    pub upstream_id: Option<String>,
    pub project: String,
    pub provider: String,
    pub state: BatchState,
    pub submitted_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub settled_at: Option<Timestamp>,
    pub request_count: u64,
    pub hold: Hold,
    pub cost: Option<Money>,
    pub list_cost: Option<Money>,
    pub custom_id_fingerprint: u64,
    pub body_hash: String,
    pub next_poll_at: Option<Timestamp>,
    pub poll_attempts: u32,
    pub last_status: Option<String>,
    pub error: Option<String>,
    pub estimate_json: String,
    /// The replica working on it (tracking, or creating it upstream) and until when.
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
}

/// Token counts by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenTotals {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    pub web_search_requests: u64,
}

impl TokenTotals {
    /// Every input-side token, for input-token budgets.
    pub fn all_input(&self) -> u64 {
        self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read
    }
}

/// Requests by result type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResultCounts {
    pub succeeded: u64,
    pub errored: u64,
    pub canceled: u64,
    pub expired: u64,
}

/// A settled batch's usage for one model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ModelUsage {
    pub model: String,
    pub tokens: TokenTotals,
    pub requests: ResultCounts,
    pub cost: Money,
    pub list_cost: Money,
}

/// What settlement records, in one transaction.
#[derive(Clone, Debug)]
pub struct Settlement {
    pub ended_at: Timestamp,
    pub settled_at: Timestamp,
    pub models: Vec<ModelUsage>,
    /// Budgets with a `models` filter, by name, with the canonical ids it selects. Their
    /// windows held only those models' share at admission, so they are charged only those
    /// models' spend; every other window the batch held is charged all of it.
    pub budget_models: HashMap<String, Vec<String>>,
}

/// What one window is charged when a batch settles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    pub cost: Money,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Settlement {
    /// What the window of `budget` is charged: the lines of the models its filter
    /// selects, or the whole batch.
    pub fn spent_by(&self, budget: &str) -> Spent {
        self.spent_on(self.budget_models.get(budget).map(Vec::as_slice))
    }

    /// The cost and tokens of the lines of `models` (`None`: all of them).
    pub fn spent_on(&self, models: Option<&[String]>) -> Spent {
        self.models.iter().filter(|m| models.is_none_or(|ms| ms.contains(&m.model))).fold(
            Spent::default(),
            |s, m| Spent {
                cost: s.cost + m.cost,
                input_tokens: s.input_tokens + m.tokens.all_input(),
                output_tokens: s.output_tokens + m.tokens.output,
            },
        )
    }

    pub fn cost(&self) -> Money {
        self.models.iter().map(|m| m.cost).sum()
    }

    pub fn list_cost(&self) -> Money {
        self.models.iter().map(|m| m.list_cost).sum()
    }
}

/// Where a page of [`Ledger::project_batches`] starts (upstream ids as cursors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListCursor<'a> {
    /// The newest batches.
    Newest,
    /// Batches older than this one.
    After(&'a str),
    /// Batches newer than this one (returned newest first too).
    Before(&'a str),
}

/// Open batches per project and provider, for gauges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    pub project: String,
    pub provider: String,
    pub batches: u64,
    pub requests: u64,
    pub oldest_submitted_at: Timestamp,
}

/// The ledger interface; backends are chosen by the storage URL's scheme. What budgets
/// add (approvals, the notification outbox, calibration) is in [`workflow::WorkflowLedger`].
pub trait Ledger: workflow::WorkflowLedger + Send + Sync {
    /// Checks every window and reserves the hold in all of them, or none, and records the
    /// submission as `submitting`; or finds it is a client's retry.
    fn admit<'a>(&'a self, s: &'a NewSubmission) -> LedgerFuture<'a, Admit>;
    /// `submitting` -> `in_flight` with the upstream's id. False if it was not submitting.
    fn mark_submitted<'a>(
        &'a self,
        sub_id: &'a str,
        upstream_id: &'a str,
        next_poll_at: Timestamp,
    ) -> LedgerFuture<'a, bool>;
    /// `submitting` -> `failed`, releasing the hold. False if it was not submitting.
    fn release<'a>(&'a self, sub_id: &'a str, reason: &'a str) -> LedgerFuture<'a, bool>;
    fn batch<'a>(&'a self, sub_id: &'a str) -> LedgerFuture<'a, Option<BatchRecord>>;
    /// A batch by its upstream's id; ids are unique per provider only.
    fn batch_by_upstream<'a>(
        &'a self,
        provider: &'a str,
        upstream_id: &'a str,
    ) -> LedgerFuture<'a, Option<BatchRecord>>;
    /// One page of a project's batches on one upstream that the upstream accepted, newest
    /// first (by submission), after or before a cursor batch: how each project's list is
    /// served, whatever other projects do upstream.
    fn project_batches<'a>(
        &'a self,
        provider: &'a str,
        project: &'a str,
        cursor: ListCursor<'a>,
        limit: u32,
    ) -> LedgerFuture<'a, Vec<BatchRecord>>;
    fn batches_in_state(&self, state: BatchState) -> LedgerFuture<'_, Vec<BatchRecord>>;
    /// In-flight batches whose next poll is due (whoever holds them).
    fn due_batches(&self, now: Timestamp, limit: u32) -> LedgerFuture<'_, Vec<BatchRecord>>;
    /// Claims up to `limit` in-flight batches whose next poll is due and whose lease is
    /// free, expired or already `lease.owner`'s; returns them leased until `lease.until`.
    /// Concurrent claims never return the same batch to two owners.
    fn claim_due<'a>(&'a self, lease: &'a Lease, limit: u32) -> LedgerFuture<'a, Vec<BatchRecord>>;
    /// Claims `submitting` batches submitted before `before` whose lease is free or
    /// expired (a live lease, even the caller's own, is a create still in progress).
    fn claim_pending<'a>(
        &'a self,
        lease: &'a Lease,
        before: Timestamp,
        limit: u32,
    ) -> LedgerFuture<'a, Vec<BatchRecord>>;
    /// Extends every lease `owner` holds on an open batch to `until`; how many.
    fn renew_leases<'a>(&'a self, owner: &'a str, until: Timestamp) -> LedgerFuture<'a, u64>;
    /// Gives up `owner`'s lease on `sub_id` (`None`: on every batch), so another replica
    /// may take it at once.
    fn drop_leases<'a>(&'a self, owner: &'a str, sub_id: Option<&'a str>) -> LedgerFuture<'a, u64>;
    /// Marks an in-flight batch as being settled by task `token` of `lease.owner`, taking
    /// its lease: false if another task holds the mark, or another replica a live lease.
    fn begin_settling<'a>(
        &'a self,
        sub_id: &'a str,
        lease: &'a Lease,
        token: &'a str,
    ) -> LedgerFuture<'a, bool>;
    /// Clears the mark `token` set (no-op if it is no longer there).
    fn end_settling<'a>(&'a self, sub_id: &'a str, token: &'a str) -> LedgerFuture<'a, ()>;
    /// Records a claim round's polls in one write (a round of 64 polls was 64 commits),
    /// and hands back `owner`'s lease on each: a batch waiting for its next poll is
    /// nobody's, its next due poll goes to whichever replica claims it first, and a
    /// replica's heartbeat renews only the batches it has in hand (it used to rewrite
    /// every row in flight each time: 0.34-0.52 s of PostgreSQL's time for 10,000, each
    /// row locked meanwhile). A lease another replica has taken meanwhile stays its own,
    /// and so does one a settlement of this replica holds (a retrieve can start one).
    /// Not made durable before it returns: a schedule a crash takes back only means an
    /// earlier poll, and a lease that runs out instead of being handed back.
    fn schedule_polls<'a>(&'a self, owner: &'a str, plans: &'a [PollPlan]) -> LedgerFuture<'a, ()>;
    /// Records the cost, moves every window's hold to spent and marks the batch settled,
    /// all in one transaction, exactly once: false if it was already settled.
    fn settle<'a>(&'a self, sub_id: &'a str, s: &'a Settlement) -> LedgerFuture<'a, bool>;
    fn model_usage<'a>(&'a self, sub_id: &'a str) -> LedgerFuture<'a, Vec<ModelUsage>>;
    /// Current totals of these windows (zero where nothing was recorded yet).
    fn windows<'a>(&'a self, refs: &'a [WindowRef]) -> LedgerFuture<'a, Vec<WindowState>>;
    fn in_flight(&self) -> LedgerFuture<'_, Vec<InFlight>>;
    /// Which of these upstream ids of `provider` the ledger already knows (one query).
    fn known_upstream_ids<'a>(
        &'a self,
        provider: &'a str,
        ids: &'a [String],
    ) -> LedgerFuture<'a, HashSet<String>>;
    /// Can the ledger answer? For `/readyz`.
    fn ping(&self) -> LedgerFuture<'_, ()>;
    /// Returns once everything this replica has committed or read so far is durable: for
    /// answering a client from what another request wrote (a retry answered with the first
    /// attempt's batch). Every write above is durable when it returns; a backend whose
    /// writes become visible before they are durable (PostgreSQL, see `pg_flush.rs`)
    /// overrides this.
    fn durable(&self) -> LedgerFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    /// Settled batches submitted in `[from, to)`, one row per batch and model, in
    /// submission order, streamed from the database (reports never load a range whole).
    /// Must be called within a Tokio runtime.
    fn spend_rows(&self, from: Timestamp, to: Timestamp) -> SpendStream;
    /// Uploaded files and their owners (OpenAI Files API). A backend without the `files`
    /// table refuses every call (OpenAI uploads then fail with a 500, nothing else does).
    fn files(&self) -> &dyn files::FileLedger {
        &files::Unsupported
    }

    // ---- issue 16 (firsthour): refusal records and listing. Defaults answer "not
    // supported" so a backend compiles before it implements them.

    /// Records a budget refusal (one insert; nothing is reserved).
    fn record_refusal<'a>(&'a self, _r: &'a Refusal) -> LedgerFuture<'a, ()> {
        Box::pin(async { Err(LedgerError::Unsupported("refusal records")) })
    }
    fn refusal<'a>(&'a self, _id: &'a str) -> LedgerFuture<'a, Option<Refusal>> {
        Box::pin(async { Ok(None) })
    }
    /// Batches matching `f` (a `refused` state filter matches none), newest first.
    fn list_batches<'a>(&'a self, _f: &'a BatchFilter) -> LedgerFuture<'a, Vec<BatchRecord>> {
        Box::pin(async { Err(LedgerError::Unsupported("listing batches")) })
    }
    /// Refusals matching `f` (a batch-state filter matches none), newest first.
    fn list_refusals<'a>(&'a self, _f: &'a BatchFilter) -> LedgerFuture<'a, Vec<Refusal>> {
        Box::pin(async { Err(LedgerError::Unsupported("listing refusals")) })
    }
}

/// The backend a storage URL names.
pub fn backend_of(url: &str) -> Result<Backend, LedgerError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        // Only the scheme: a URL may carry a password.
        let scheme = url.split(':').next().unwrap_or("");
        Err(LedgerError::Url(format!(
            "`{scheme}:` is not supported: expected sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }
}

/// Opens the backend the URL names at this binary's schema: an empty database is created,
/// an older or newer schema refused (see [`migrate`]).
pub async fn open(
    url: &str,
    durability: crate::config::Durability,
) -> Result<std::sync::Arc<dyn Ledger>, LedgerError> {
    Ok(match backend_of(url)? {
        Backend::Sqlite => std::sync::Arc::new(SqliteLedger::open_with(url, durability).await?),
        Backend::Postgres => std::sync::Arc::new(PgLedger::open(url).await?),
    })
}

/// `batchcost migrate`: creates or upgrades the schema; returns (before, after) versions.
pub async fn migrate_url(url: &str) -> Result<(SchemaState, i64), LedgerError> {
    match backend_of(url)? {
        Backend::Sqlite => sqlite::migrate(url, None).await,
        Backend::Postgres => postgres::migrate(url, None).await,
    }
}

/// Migrates only up to `version`: how tests build an older ledger.
#[doc(hidden)]
pub async fn migrate_url_to(url: &str, version: i64) -> Result<(SchemaState, i64), LedgerError> {
    match backend_of(url)? {
        Backend::Sqlite => sqlite::migrate(url, Some(version)).await,
        Backend::Postgres => postgres::migrate(url, Some(version)).await,
    }
}

pub(crate) fn to_db(m: Money) -> Result<i64, LedgerError> {
    m.to_i64().ok_or_else(|| LedgerError::Range(format!("amount {m} exceeds the ledger's range")))
}

pub(crate) fn count_to_db(n: u64) -> Result<i64, LedgerError> {
    i64::try_from(n)
        .map_err(|_| LedgerError::Range(format!("count {n} exceeds the ledger's range")))
}

pub(crate) fn ts_to_db(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn ts_from_db(v: i64) -> Timestamp {
    Timestamp::from_microsecond(v).unwrap_or(Timestamp::UNIX_EPOCH)
}
