-- Several replicas on one ledger (issue 13): who works on a batch, and a dedupe key the
-- database enforces. See sqlite/0002_replicas.sql for what each column means.
ALTER TABLE batches ADD COLUMN lease_owner TEXT;
ALTER TABLE batches ADD COLUMN lease_until BIGINT;
ALTER TABLE batches ADD COLUMN settling_by TEXT;
CREATE INDEX IF NOT EXISTS batches_lease ON batches (lease_owner);

CREATE TABLE IF NOT EXISTS dedupe (
    project      TEXT NOT NULL,
    body_hash    TEXT NOT NULL,
    sub_id       TEXT NOT NULL,
    submitted_at BIGINT NOT NULL,
    PRIMARY KEY (project, body_hash)
);
INSERT INTO dedupe (project, body_hash, sub_id, submitted_at)
    SELECT DISTINCT ON (project, body_hash) project, body_hash, sub_id, submitted_at
    FROM batches WHERE state <> 'failed' ORDER BY project, body_hash, submitted_at DESC
    ON CONFLICT DO NOTHING;
CREATE INDEX IF NOT EXISTS dedupe_sub ON dedupe (sub_id);
