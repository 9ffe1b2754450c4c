-- batchcost ledger schema v1 (SQLite). Amounts are INTEGER (64-bit) pico-dollars, instants
-- INTEGER unix microseconds. Kept with IF NOT EXISTS: a ledger created before versioned
-- migrations has exactly these tables, and `batchcost migrate` adopts it by running this.
CREATE TABLE IF NOT EXISTS batches (
    sub_id            TEXT PRIMARY KEY,
    upstream_id       TEXT UNIQUE,
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
