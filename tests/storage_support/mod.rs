//! Which ledger backend the tests run on: `BATCHCOST_TEST_STORAGE=postgres` gives each
//! ledger a fresh PostgreSQL database (`batchcost_test_<pid>_<n>` on
//! `$BATCHCOST_TEST_PG`, default the local server's `test` database), dropped when the
//! test ends; anything else a SQLite file in a temporary folder.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The admin connection that creates and drops test databases.
pub fn pg_admin_url() -> String {
    std::env::var("BATCHCOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn on_postgres() -> bool {
    std::env::var("BATCHCOST_TEST_STORAGE").is_ok_and(|v| v == "postgres")
}

/// One test's ledger database; a PostgreSQL one is dropped with it.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
}

impl TestDb {
    /// The backend the environment asks for; a SQLite file goes in `dir`.
    pub fn fresh(dir: &Path) -> TestDb {
        if on_postgres() { TestDb::postgres() } else { TestDb::sqlite(dir) }
    }

    pub fn sqlite(dir: &Path) -> TestDb {
        TestDb { url: format!("sqlite://{}", dir.join("ledger.db").display()), pg_name: None }
    }

    /// A new, empty PostgreSQL database.
    pub fn postgres() -> TestDb {
        // A test binary may hold this module twice (through two support modules), each
        // with its own counter: the clock tells the copies apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "batchcost_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin(format!("DROP DATABASE IF EXISTS {name}"));
        admin(format!("CREATE DATABASE {name}"));
        let base = pg_admin_url();
        let server = base.rsplit_once('/').map_or(base.as_str(), |(s, _)| s);
        TestDb { url: format!("{server}/{name}"), pg_name: Some(name) }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Runs one statement on the admin database, on a thread of its own (callable from
/// inside or outside a Tokio runtime, and from `Drop`).
fn admin(sql: String) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&pg_admin_url())
                .await
                .expect("PostgreSQL for BATCHCOST_TEST_STORAGE=postgres");
            sqlx::raw_sql(&sql).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        })
    })
    .join()
    .unwrap();
}
