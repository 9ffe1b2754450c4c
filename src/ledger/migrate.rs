//! Versioned schema migrations for both backends, run by sqlx's migrator (its
//! `_sqlx_migrations` table records what was applied, with checksums). The SQL lives in
//! `migrations/{sqlite,postgres}/NNNN_name.sql`, embedded in the binary.
//!
//! Policy: `batchcost migrate` creates or upgrades. Every other command opens the ledger
//! only at the schema this binary was built for, except that an EMPTY database is created
//! from scratch (the demo, tests and a first start just work); an existing older schema is
//! never upgraded behind the operator's back, because other replicas may still run the
//! old binary against it.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::LedgerError;

/// One embedded migration: version, name, SQL.
type Step = (i64, &'static str, &'static str);

const SQLITE: &[Step] = &[
    (1, "initial", include_str!("migrations/sqlite/0001_initial.sql")),
    (2, "replicas", include_str!("migrations/sqlite/0002_replicas.sql")),
    (3, "provider_ids", include_str!("migrations/sqlite/0003_provider_ids.sql")),
    (4, "refusals", include_str!("migrations/sqlite/0004_refusals.sql")),
    (5, "budgets", include_str!("migrations/sqlite/0005_budgets.sql")),
    (6, "files", include_str!("migrations/sqlite/0006_files.sql")),
    (7, "admit_function", include_str!("migrations/sqlite/0007_admit_function.sql")),
    (8, "admit_group", include_str!("migrations/sqlite/0008_admit_group.sql")),
    (9, "drop_batches_dedupe", include_str!("migrations/sqlite/0009_drop_batches_dedupe.sql")),
    (10, "fewer_btrees", include_str!("migrations/sqlite/0010_fewer_btrees.sql")),
];

const POSTGRES: &[Step] = &[
    (1, "initial", include_str!("migrations/postgres/0001_initial.sql")),
    (2, "replicas", include_str!("migrations/postgres/0002_replicas.sql")),
    (3, "provider_ids", include_str!("migrations/postgres/0003_provider_ids.sql")),
    (4, "refusals", include_str!("migrations/postgres/0004_refusals.sql")),
    (5, "budgets", include_str!("migrations/postgres/0005_budgets.sql")),
    (6, "files", include_str!("migrations/postgres/0006_files.sql")),
    (7, "admit_function", include_str!("migrations/postgres/0007_admit_function.sql")),
    (8, "admit_group", include_str!("migrations/postgres/0008_admit_group.sql")),
    (9, "drop_batches_dedupe", include_str!("migrations/postgres/0009_drop_batches_dedupe.sql")),
    (10, "fewer_btrees", include_str!("migrations/postgres/0010_fewer_btrees.sql")),
];

/// Which backend's migrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn steps(self) -> &'static [Step] {
        match self {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        }
    }

    /// The schema version this binary reads and writes.
    pub fn latest(self) -> i64 {
        self.steps().last().map_or(0, |s| s.0)
    }
}

/// The migrator for `backend`, up to and including `upto` (all when `None`; tests build an
/// older ledger with a lower one).
pub fn migrator(backend: Backend, upto: Option<i64>) -> Migrator {
    let migrations: Vec<Migration> = backend
        .steps()
        .iter()
        .filter(|(v, _, _)| upto.is_none_or(|u| *v <= u))
        .map(|(v, name, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*name),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// Where a database stands against this binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaState {
    /// No ledger tables at all: safe to create.
    Empty,
    /// At `latest`.
    Current,
    /// Older (`None`: a ledger from before versioned migrations).
    Older(Option<i64>),
    /// Written by a newer binary.
    Newer(i64),
}

impl SchemaState {
    /// From whether the `batches` table exists and the highest applied version.
    pub fn of(backend: Backend, has_batches: bool, applied: Option<i64>) -> SchemaState {
        let latest = backend.latest();
        match applied {
            None if !has_batches => SchemaState::Empty,
            None => SchemaState::Older(None),
            Some(v) if v < latest => SchemaState::Older(Some(v)),
            Some(v) if v > latest => SchemaState::Newer(v),
            Some(_) => SchemaState::Current,
        }
    }

    /// Ok for Current; the operator's next step otherwise.
    pub fn require_current(self, backend: Backend) -> Result<(), LedgerError> {
        let latest = backend.latest();
        match self {
            SchemaState::Current | SchemaState::Empty => Ok(()),
            SchemaState::Older(v) => Err(LedgerError::Schema(format!(
                "the ledger schema is older than this binary's (version {} < {latest}): \
                 run `batchcost migrate` (with the same --config) first",
                v.map_or_else(|| "unversioned".to_string(), |v| v.to_string())
            ))),
            SchemaState::Newer(v) => Err(LedgerError::Schema(format!(
                "the ledger schema (version {v}) is newer than this binary's ({latest}): \
                 upgrade batchcost"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_what_the_database_holds() {
        let b = Backend::Sqlite;
        assert_eq!(SchemaState::of(b, false, None), SchemaState::Empty);
        assert_eq!(SchemaState::of(b, true, None), SchemaState::Older(None));
        assert_eq!(SchemaState::of(b, true, Some(1)), SchemaState::Older(Some(1)));
        assert_eq!(SchemaState::of(b, true, Some(b.latest())), SchemaState::Current);
        assert_eq!(SchemaState::of(b, true, Some(99)), SchemaState::Newer(99));
        let err = SchemaState::Older(Some(1)).require_current(b).unwrap_err().to_string();
        assert!(err.contains("batchcost migrate"), "{err}");
    }

    #[test]
    fn both_backends_have_the_same_versions() {
        let v = |b: Backend| b.steps().iter().map(|s| (s.0, s.1)).collect::<Vec<_>>();
        assert_eq!(v(Backend::Sqlite), v(Backend::Postgres));
    }
}
