//! [`FileLedger`] on SQLite (the `files` table, migration 0006).

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::files::{FileLedger, FileRecord, FilesQuery};
use super::rows::u;
use super::{LedgerError, LedgerFuture, SqliteLedger, count_to_db, ts_from_db, ts_to_db};

const COLUMNS: &str = "provider, file_id, project, purpose, filename, bytes, lines, created_at, estimate_json, batch_id";

fn from_row(r: &SqliteRow) -> Result<FileRecord, LedgerError> {
    Ok(FileRecord {
        provider: r.try_get("provider")?,
        file_id: r.try_get("file_id")?,
        project: r.try_get("project")?,
        purpose: r.try_get("purpose")?,
        filename: r.try_get("filename")?,
        bytes: u(r.try_get("bytes")?),
        lines: u(r.try_get("lines")?),
        created_at: ts_from_db(r.try_get("created_at")?),
        estimate_json: r.try_get("estimate_json")?,
        batch_id: r.try_get("batch_id")?,
    })
}

impl FileLedger for SqliteLedger {
    fn record_file<'a>(&'a self, f: &'a FileRecord) -> LedgerFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(&format!(
                "INSERT INTO files ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (provider, file_id) DO NOTHING"
            ))
            .bind(&f.provider)
            .bind(&f.file_id)
            .bind(&f.project)
            .bind(&f.purpose)
            .bind(&f.filename)
            .bind(count_to_db(f.bytes)?)
            .bind(count_to_db(f.lines)?)
            .bind(ts_to_db(f.created_at))
            .bind(&f.estimate_json)
            .bind(&f.batch_id)
            .execute(&mut *self.w().await)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn file<'a>(
        &'a self,
        provider: &'a str,
        file_id: &'a str,
    ) -> LedgerFuture<'a, Option<FileRecord>> {
        Box::pin(async move {
            let row = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM files WHERE provider = $1 AND file_id = $2 \
                 AND deleted_at IS NULL"
            ))
            .bind(provider)
            .bind(file_id)
            .fetch_optional(&self.reader)
            .await?;
            row.as_ref().map(from_row).transpose()
        })
    }

    fn project_files<'a>(&'a self, q: FilesQuery<'a>) -> LedgerFuture<'a, Vec<FileRecord>> {
        Box::pin(async move {
            let (cmp, order) = if q.ascending { (">", "ASC") } else { ("<", "DESC") };
            // The cursor row is looked up in the same statement; an unknown cursor (or one
            // of another project) yields an empty page, never another project's files.
            let cursor = if q.after.is_some() {
                format!(
                    "AND (created_at, file_id) {cmp} (SELECT created_at, file_id FROM files \
                     WHERE provider = $1 AND project = $2 AND file_id = $5)"
                )
            } else {
                String::new()
            };
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM files WHERE provider = $1 AND project = $2 \
                 AND deleted_at IS NULL AND ($3 IS NULL OR purpose = $3) {cursor} \
                 ORDER BY created_at {order}, file_id {order} LIMIT $4"
            ))
            .bind(q.provider)
            .bind(q.project)
            .bind(q.purpose)
            .bind(i64::from(q.limit))
            .bind(q.after)
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(from_row).collect()
        })
    }

    fn delete_file<'a>(&'a self, provider: &'a str, file_id: &'a str) -> LedgerFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE files SET deleted_at = $3 WHERE provider = $1 AND file_id = $2 \
                 AND deleted_at IS NULL",
            )
            .bind(provider)
            .bind(file_id)
            .bind(ts_to_db(jiff::Timestamp::now()))
            .execute(&mut *self.w().await)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}
