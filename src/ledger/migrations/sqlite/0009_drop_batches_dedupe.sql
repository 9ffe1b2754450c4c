-- ==== issue 13/17: one index fewer on every batch write ================================
-- `batches_dedupe (project, body_hash, submitted_at)` served the retry dedupe until
-- version 3 moved it to the `dedupe` table and its unique key; no query has read it
-- since. Every batch insert still wrote it, and on PostgreSQL so did every update of a
-- batch row that is not HOT (the create's mark, each claim and poll schedule change
-- indexed columns): one B-tree insert of a project name and a 64-character hash each.
DROP INDEX IF EXISTS batches_dedupe;
