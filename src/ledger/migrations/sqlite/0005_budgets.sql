-- Approvals, the notification outbox and per-batch bounds (calibrated holds).
-- One row per approval request: who was refused (project, body) and when, who approved
-- it and when, which batch used it.
CREATE TABLE IF NOT EXISTS approvals (
    id              TEXT PRIMARY KEY,
    project         TEXT NOT NULL,
    body_hash       TEXT NOT NULL,
    budget          TEXT NOT NULL,
    hold_pico       INTEGER NOT NULL,
    threshold_pico  INTEGER NOT NULL,
    requested_at    INTEGER NOT NULL,
    refusals        INTEGER NOT NULL DEFAULT 1,
    last_refused_at INTEGER NOT NULL,
    approved_by     TEXT,
    approved_at     INTEGER,
    expires_at      INTEGER,
    used_by         TEXT,
    used_at         INTEGER
);
CREATE INDEX IF NOT EXISTS approvals_body ON approvals (project, body_hash, requested_at);

-- The unique key makes "once per threshold per window per webhook" a database fact: every
-- replica may try to insert the same crossing; one row results.
CREATE TABLE IF NOT EXISTS notifications (
    budget          TEXT NOT NULL,
    project         TEXT NOT NULL,
    window_start    INTEGER NOT NULL,
    threshold       TEXT NOT NULL,
    target          INTEGER NOT NULL,
    period          TEXT NOT NULL,
    window_end      INTEGER NOT NULL,
    limit_pico      INTEGER NOT NULL,
    used_pico       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_by      TEXT,
    claimed_until   INTEGER,
    delivered_at    INTEGER,
    last_error      TEXT,
    PRIMARY KEY (budget, project, window_start, threshold, target)
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (delivered_at, next_attempt_at);

-- Each batch's per-model bounds at submission, the other half of what calibrated holds
-- learn from (batch_usage has the actual tokens).
CREATE TABLE IF NOT EXISTS batch_bounds (
    sub_id             TEXT NOT NULL,
    model              TEXT NOT NULL,
    input_upper        INTEGER NOT NULL,
    output_worst       INTEGER NOT NULL,
    worst_pico         INTEGER NOT NULL,
    worst_output_pico  INTEGER NOT NULL,
    PRIMARY KEY (sub_id, model)
);
