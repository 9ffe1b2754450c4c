-- batchcost ledger schema (SQLite). Amounts are INTEGER pico-dollars, instants INTEGER
-- unix microseconds. Statements use $N placeholders, valid in PostgreSQL too.
CREATE TABLE IF NOT EXISTS batches (
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
    estimate_json     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_state_poll ON batches (state, next_poll_at);
CREATE INDEX IF NOT EXISTS batches_dedupe ON batches (project, body_hash, submitted_at);
CREATE INDEX IF NOT EXISTS batches_submitted ON batches (submitted_at);
-- Upstream ids are unique per provider only (two upstreams may reuse an id format).
CREATE UNIQUE INDEX IF NOT EXISTS batches_upstream ON batches (provider, upstream_id);
-- Each project's list, newest first.
CREATE INDEX IF NOT EXISTS batches_project_list ON batches (provider, project, submitted_at, sub_id);

CREATE TABLE IF NOT EXISTS budget_windows (
    budget          TEXT NOT NULL,
    window_start    INTEGER NOT NULL,
    window_end      INTEGER NOT NULL,
    project         TEXT NOT NULL,
    period          TEXT NOT NULL,
    limit_pico      INTEGER,
    limit_input     INTEGER,
    limit_output    INTEGER,
    spent_pico      INTEGER NOT NULL DEFAULT 0,
    reserved_pico   INTEGER NOT NULL DEFAULT 0,
    spent_input     INTEGER NOT NULL DEFAULT 0,
    reserved_input  INTEGER NOT NULL DEFAULT 0,
    spent_output    INTEGER NOT NULL DEFAULT 0,
    reserved_output INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (budget, window_start)
);

CREATE TABLE IF NOT EXISTS reservations (
    sub_id        TEXT NOT NULL,
    budget        TEXT NOT NULL,
    window_start  INTEGER NOT NULL,
    hold_pico     INTEGER NOT NULL,
    hold_input    INTEGER NOT NULL,
    hold_output   INTEGER NOT NULL,
    state         TEXT NOT NULL,
    PRIMARY KEY (sub_id, budget)
);

CREATE TABLE IF NOT EXISTS batch_usage (
    sub_id          TEXT NOT NULL,
    model           TEXT NOT NULL,
    input_tokens    INTEGER NOT NULL,
    output_tokens   INTEGER NOT NULL,
    cache_write_5m  INTEGER NOT NULL,
    cache_write_1h  INTEGER NOT NULL,
    cache_read      INTEGER NOT NULL,
    web_searches    INTEGER NOT NULL,
    succeeded       INTEGER NOT NULL,
    errored         INTEGER NOT NULL,
    canceled        INTEGER NOT NULL,
    expired         INTEGER NOT NULL,
    cost_pico       INTEGER NOT NULL,
    list_cost_pico  INTEGER NOT NULL,
    PRIMARY KEY (sub_id, model)
);

-- BEGIN files (issue 11, OpenAI Files API): fold into the migrations as its own step.
-- One row per uploaded input file and per output/error file a batch wrote; file_id is the
-- upstream's. estimate_json: the provider's estimate of an input file (NULL for outputs).
CREATE TABLE IF NOT EXISTS files (
    provider      TEXT NOT NULL,
    file_id       TEXT NOT NULL,
    project       TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    filename      TEXT NOT NULL,
    bytes         INTEGER NOT NULL,
    lines         INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    estimate_json TEXT,
    batch_id      TEXT,
    deleted_at    INTEGER,
    PRIMARY KEY (provider, file_id)
);
CREATE INDEX IF NOT EXISTS files_project_list ON files (provider, project, created_at, file_id);
-- END files
