-- name: InsertRun :exec
INSERT INTO runs (id, tenant_id, workflow, status, input, output, error, metadata, parent_run_id, parent_step_run_id, created_at, started_at, finished_at, spawn_key)
VALUES (@id, @tenant_id, @workflow, @status, @input, @output, @error, @metadata, @parent_run_id, @parent_step_run_id, @created_at, @started_at, @finished_at, @spawn_key);

-- name: InsertRunMetadata :exec
INSERT INTO run_metadata (run_id, tenant_id, key, value) VALUES (@run_id, @tenant_id, @key, @value);

-- name: GetRun :one
SELECT * FROM runs WHERE tenant_id = @tenant_id AND id = @id;

-- name: GetRunForUpdate :one
-- SQLite has no row locks: the transaction already holds the database's
-- single write lock (BEGIN IMMEDIATE), so this is GetRun.
SELECT * FROM runs WHERE tenant_id = @tenant_id AND id = @id;

-- name: UpdateRun :execrows
UPDATE runs SET
    status      = @status,
    output      = @output,
    error       = @error,
    started_at  = @started_at,
    finished_at = @finished_at
WHERE tenant_id = @tenant_id AND id = @id;

-- name: CountActiveRuns :many
-- Metrics read this on every scrape: the runs_active index holds only
-- queued and running runs, so the count never scans finished ones.
SELECT status, COUNT(*) AS runs FROM runs WHERE status IN ('queued', 'running') GROUP BY status;
