-- Several replicas on one ledger (issue 13): who works on a batch, and a dedupe key the
-- database enforces.
--
-- lease_owner / lease_until: the replica tracking the batch (or, while `submitting`,
-- creating it upstream), until when; another replica takes it once it has expired.
-- settling_by: the one task (replica id and task number) streaming the results now.
ALTER TABLE batches ADD COLUMN lease_owner TEXT;
ALTER TABLE batches ADD COLUMN lease_until INTEGER;
ALTER TABLE batches ADD COLUMN settling_by TEXT;
CREATE INDEX IF NOT EXISTS batches_lease ON batches (lease_owner);

-- The newest live submission of each (project, body): a retry inserts the same key and
-- finds the first; a released submission's row is deleted so the body may be sent again.
CREATE TABLE IF NOT EXISTS dedupe (
    project      TEXT NOT NULL,
    body_hash    TEXT NOT NULL,
    sub_id       TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    PRIMARY KEY (project, body_hash)
);
INSERT OR REPLACE INTO dedupe (project, body_hash, sub_id, submitted_at)
    SELECT project, body_hash, sub_id, submitted_at FROM batches
    WHERE state <> 'failed' ORDER BY submitted_at;
CREATE INDEX IF NOT EXISTS dedupe_sub ON dedupe (sub_id);
