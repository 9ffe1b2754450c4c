-- Upstream ids are unique per provider only (two upstreams may reuse an id format), and
-- each project's list is served from the ledger, newest first. SQLite cannot drop the
-- column's UNIQUE constraint in place, so the table is rebuilt with the same columns.
CREATE TABLE batches_v3 (
    sub_id            TEXT PRIMARY KEY,
    upstream_id       TEXT,
    project           TEXT NOT NULL,
    provider          TEXT NOT NULL,
    state             TEXT NOT NULL,
    submitted_at      INTEGER NOT NULL,
    ended_at          INTEGER,
    settled_at        INTEGER,
    request_count     INTEGER NOT NULL,
    hold_pico         INTEGER NOT NULL,
    hold_input        INTEGER NOT NULL,
    hold_output       INTEGER NOT NULL,
    cost_pico         INTEGER,
    list_cost_pico    INTEGER,
    custom_id_fp      INTEGER NOT NULL,
    body_hash         TEXT NOT NULL,
    next_poll_at      INTEGER,
    poll_attempts     INTEGER NOT NULL DEFAULT 0,
    last_status       TEXT,
    error             TEXT,
    estimate_json     TEXT NOT NULL,
    lease_owner       TEXT,
    lease_until       INTEGER,
    settling_by       TEXT
);
INSERT INTO batches_v3 SELECT sub_id, upstream_id, project, provider, state, submitted_at,
    ended_at, settled_at, request_count, hold_pico, hold_input, hold_output, cost_pico,
    list_cost_pico, custom_id_fp, body_hash, next_poll_at, poll_attempts, last_status, error,
    estimate_json, lease_owner, lease_until, settling_by FROM batches;
DROP TABLE batches;
ALTER TABLE batches_v3 RENAME TO batches;
CREATE INDEX batches_state_poll ON batches (state, next_poll_at);
CREATE INDEX batches_dedupe ON batches (project, body_hash, submitted_at);
CREATE INDEX batches_submitted ON batches (submitted_at);
CREATE INDEX batches_lease ON batches (lease_owner);
CREATE UNIQUE INDEX batches_upstream ON batches (provider, upstream_id);
CREATE INDEX batches_project_list ON batches (provider, project, submitted_at, sub_id);
