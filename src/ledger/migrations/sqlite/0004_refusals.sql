-- ==== BEGIN issue 16 (firsthour): budget refusals ====================================
-- One row per submission a budget refused (429), so "why was my batch refused?" can be
-- answered afterwards: GET /api/batches lists them with the batches, GET /api/batches/{id}
-- shows one, and the 429 carries the id. Nothing else refers to this table; it only
-- grows by inserts. Amounts are pico-dollars, instants unix microseconds, like batches.
CREATE TABLE IF NOT EXISTS refusals (
    refusal_id      TEXT PRIMARY KEY,
    project         TEXT NOT NULL,
    provider        TEXT NOT NULL,
    refused_at      INTEGER NOT NULL,
    request_id      TEXT NOT NULL,
    reason          TEXT NOT NULL,
    budget          TEXT NOT NULL,
    period          TEXT NOT NULL,
    limit_kind      TEXT NOT NULL,
    request_count   INTEGER NOT NULL,
    requested_pico  INTEGER NOT NULL,
    limit_pico      INTEGER,
    spent_pico      INTEGER NOT NULL,
    reserved_pico   INTEGER NOT NULL,
    window_end      INTEGER NOT NULL,
    body_hash       TEXT NOT NULL,
    message         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refusals_at ON refusals (refused_at);
CREATE INDEX IF NOT EXISTS refusals_project ON refusals (project, refused_at);
-- ==== END issue 16 ====================================================================
