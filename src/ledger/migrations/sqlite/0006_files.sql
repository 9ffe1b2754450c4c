-- BEGIN files (issue 11 OpenAI Files API, issue 12 Gemini File API): one row per uploaded
-- input file and per output/error file a batch wrote; file_id is the upstream's.
-- estimate_json: the provider's priced summary of an input file (NULL for outputs).
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
