-- batchcost ledger schema v1 (PostgreSQL): the same tables as SQLite v1. Amounts are
-- BIGINT pico-dollars, instants BIGINT unix microseconds, so both backends share their
-- statements and row decoding.
CREATE TABLE IF NOT EXISTS batches (
    sub_id            TEXT PRIMARY KEY,
    upstream_id       TEXT UNIQUE,
    project           TEXT NOT NULL,
    provider          TEXT NOT NULL,
    state             TEXT NOT NULL,
    submitted_at      BIGINT NOT NULL,
    ended_at          BIGINT,
    settled_at        BIGINT,
    request_count     BIGINT NOT NULL,
    hold_pico         BIGINT NOT NULL,
    hold_input        BIGINT NOT NULL,
    hold_output       BIGINT NOT NULL,
    cost_pico         BIGINT,
    list_cost_pico    BIGINT,
    custom_id_fp      BIGINT NOT NULL,
    body_hash         TEXT NOT NULL,
    next_poll_at      BIGINT,
    poll_attempts     BIGINT NOT NULL DEFAULT 0,
    last_status       TEXT,
    error             TEXT,
    estimate_json     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_state_poll ON batches (state, next_poll_at);
CREATE INDEX IF NOT EXISTS batches_dedupe ON batches (project, body_hash, submitted_at);
CREATE INDEX IF NOT EXISTS batches_submitted ON batches (submitted_at);

CREATE TABLE IF NOT EXISTS budget_windows (
    budget          TEXT NOT NULL,
    window_start    BIGINT NOT NULL,
    window_end      BIGINT NOT NULL,
    project         TEXT NOT NULL,
    period          TEXT NOT NULL,
    limit_pico      BIGINT,
    limit_input     BIGINT,
    limit_output    BIGINT,
    spent_pico      BIGINT NOT NULL DEFAULT 0,
    reserved_pico   BIGINT NOT NULL DEFAULT 0,
    spent_input     BIGINT NOT NULL DEFAULT 0,
    reserved_input  BIGINT NOT NULL DEFAULT 0,
    spent_output    BIGINT NOT NULL DEFAULT 0,
    reserved_output BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (budget, window_start)
);

CREATE TABLE IF NOT EXISTS reservations (
    sub_id        TEXT NOT NULL,
    budget        TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    hold_pico     BIGINT NOT NULL,
    hold_input    BIGINT NOT NULL,
    hold_output   BIGINT NOT NULL,
    state         TEXT NOT NULL,
    PRIMARY KEY (sub_id, budget)
);

CREATE TABLE IF NOT EXISTS batch_usage (
    sub_id          TEXT NOT NULL,
    model           TEXT NOT NULL,
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    cache_write_5m  BIGINT NOT NULL,
    cache_write_1h  BIGINT NOT NULL,
    cache_read      BIGINT NOT NULL,
    web_searches    BIGINT NOT NULL,
    succeeded       BIGINT NOT NULL,
    errored         BIGINT NOT NULL,
    canceled        BIGINT NOT NULL,
    expired         BIGINT NOT NULL,
    cost_pico       BIGINT NOT NULL,
    list_cost_pico  BIGINT NOT NULL,
    PRIMARY KEY (sub_id, model)
);
