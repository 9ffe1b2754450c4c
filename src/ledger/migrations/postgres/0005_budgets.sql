-- Approvals, the notification outbox and per-batch bounds (calibrated holds).
-- One row per approval request: who was refused (project, body) and when, who approved
-- it and when, which batch used it.
CREATE TABLE IF NOT EXISTS approvals (
    id              TEXT PRIMARY KEY,
    project         TEXT NOT NULL,
    body_hash       TEXT NOT NULL,
    budget          TEXT NOT NULL,
    hold_pico       BIGINT NOT NULL,
    threshold_pico  BIGINT NOT NULL,
    requested_at    BIGINT NOT NULL,
    refusals        BIGINT NOT NULL DEFAULT 1,
    last_refused_at BIGINT NOT NULL,
    approved_by     TEXT,
    approved_at     BIGINT,
    expires_at      BIGINT,
    used_by         TEXT,
    used_at         BIGINT
);
CREATE INDEX IF NOT EXISTS approvals_body ON approvals (project, body_hash, requested_at);

-- The unique key makes "once per threshold per window per webhook" a database fact: every
-- replica may try to insert the same crossing; one row results.
CREATE TABLE IF NOT EXISTS notifications (
    budget          TEXT NOT NULL,
    project         TEXT NOT NULL,
    window_start    BIGINT NOT NULL,
    threshold       TEXT NOT NULL,
    target          BIGINT NOT NULL,
    period          TEXT NOT NULL,
    window_end      BIGINT NOT NULL,
    limit_pico      BIGINT NOT NULL,
    used_pico       BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT,
    PRIMARY KEY (budget, project, window_start, threshold, target)
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (delivered_at, next_attempt_at);

-- Each batch's per-model bounds at submission, the other half of what calibrated holds
-- learn from (batch_usage has the actual tokens).
CREATE TABLE IF NOT EXISTS batch_bounds (
    sub_id             TEXT NOT NULL,
    model              TEXT NOT NULL,
    input_upper        BIGINT NOT NULL,
    output_worst       BIGINT NOT NULL,
    worst_pico         BIGINT NOT NULL,
    worst_output_pico  BIGINT NOT NULL,
    PRIMARY KEY (sub_id, model)
);
