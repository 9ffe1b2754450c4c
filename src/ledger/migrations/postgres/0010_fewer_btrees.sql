-- ==== issue 17: fewer index entries per admission =====================================
-- As SQLite's version 10: `dedupe_sub` goes (a release finds its dedupe key through the
-- batch row, `sql::DEDUPE_FORGET`), and `batches_upstream` indexes only batches the
-- upstream has taken, so an admission no longer inserts a (provider, NULL) entry. Every
-- lookup by upstream id compares it with `=` or `= ANY`, strict operators, so the
-- planner proves the index's predicate and still uses it. (PostgreSQL keeps its heap
-- apart from every index already: no table changes here.)
DROP INDEX IF EXISTS dedupe_sub;
DROP INDEX IF EXISTS batches_upstream;
CREATE UNIQUE INDEX batches_upstream ON batches (provider, upstream_id)
    WHERE upstream_id IS NOT NULL;
