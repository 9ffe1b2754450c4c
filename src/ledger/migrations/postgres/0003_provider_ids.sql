-- Upstream ids are unique per provider only (two upstreams may reuse an id format), and
-- each project's list is served from the ledger, newest first.
ALTER TABLE batches DROP CONSTRAINT IF EXISTS batches_upstream_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS batches_upstream ON batches (provider, upstream_id);
CREATE INDEX IF NOT EXISTS batches_project_list ON batches (provider, project, submitted_at, sub_id);
