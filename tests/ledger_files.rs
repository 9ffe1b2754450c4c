//! The ledger's files table: ownership, newest-first pages with an `after` cursor that never
//! crosses projects or providers, idempotent records, deletes. Runs on SQLite and on
//! PostgreSQL (a fresh database per test), since both back the Files API surfaces.

use batchcost::config::Durability;
use batchcost::ledger;
use batchcost::ledger::files::{FileRecord, FilesQuery};
use jiff::Timestamp;

#[path = "storage_support/mod.rs"]
mod storage;

use storage::TestDb;

fn file(provider: &str, id: &str, project: &str, second: i64) -> FileRecord {
    FileRecord {
        provider: provider.into(),
        file_id: id.into(),
        project: project.into(),
        purpose: "batch".into(),
        filename: format!("{id}.jsonl"),
        bytes: 100,
        lines: 3,
        created_at: Timestamp::from_second(1_767_600_000 + second).unwrap(),
        estimate_json: Some("{\"requests\":3}".into()),
        batch_id: None,
    }
}

fn ids(v: &[FileRecord]) -> Vec<&str> {
    v.iter().map(|f| f.file_id.as_str()).collect()
}

#[tokio::test]
async fn sqlite_files_belong_to_one_project_and_page_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    files_belong_to_one_project_and_page_newest_first(TestDb::sqlite(dir.path())).await;
}

#[tokio::test]
async fn postgres_files_belong_to_one_project_and_page_newest_first() {
    files_belong_to_one_project_and_page_newest_first(TestDb::postgres()).await;
}

async fn files_belong_to_one_project_and_page_newest_first(db: TestDb) {
    let ledger = ledger::open(&db.url, Durability::Normal).await.unwrap();
    let files = ledger.files();
    for (i, id) in ["f1", "f2", "f3", "f4"].iter().enumerate() {
        assert!(files.record_file(&file("openai", id, "search", i as i64)).await.unwrap());
    }
    assert!(files.record_file(&file("openai", "g1", "ads", 10)).await.unwrap());
    assert!(files.record_file(&file("together", "f9", "search", 11)).await.unwrap());
    // Recording again changes nothing.
    let mut again = file("openai", "f1", "ads", 99);
    again.bytes = 1;
    assert!(!files.record_file(&again).await.unwrap());
    let f1 = files.file("openai", "f1").await.unwrap().unwrap();
    assert_eq!((f1.project.as_str(), f1.bytes), ("search", 100));
    assert_eq!(f1.estimate_json.as_deref(), Some("{\"requests\":3}"));
    assert!(files.file("together", "f1").await.unwrap().is_none());

    let q = |after, limit, ascending| FilesQuery {
        provider: "openai",
        project: "search",
        after,
        limit,
        ascending,
        purpose: None,
    };
    assert_eq!(ids(&files.project_files(q(None, 2, false)).await.unwrap()), ["f4", "f3"]);
    assert_eq!(ids(&files.project_files(q(Some("f3"), 5, false)).await.unwrap()), ["f2", "f1"]);
    assert_eq!(ids(&files.project_files(q(Some("f2"), 5, true)).await.unwrap()), ["f3", "f4"]);
    // Another project's file as a cursor shows nothing of theirs or ours.
    assert!(files.project_files(q(Some("g1"), 5, false)).await.unwrap().is_empty());
    let outputs = FilesQuery { purpose: Some("batch_output"), ..q(None, 5, false) };
    assert!(files.project_files(outputs).await.unwrap().is_empty());

    assert!(files.delete_file("openai", "f4").await.unwrap());
    assert!(!files.delete_file("openai", "f4").await.unwrap());
    assert!(files.file("openai", "f4").await.unwrap().is_none());
    assert_eq!(ids(&files.project_files(q(None, 10, false)).await.unwrap()), ["f3", "f2", "f1"]);
}
