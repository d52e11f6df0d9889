-- Runs and their metadata pairs. ListRuns is built in Go (its filters are
-- optional); see listRuns in runs.go.

-- name: InsertRun :execrows
-- Zero rows: the ID is taken (see CreateTenant for why not an error).
INSERT INTO runs (
    id, tenant_id, workflow, status, input, output, error, metadata,
    parent_run_id, parent_step_run_id, created_at, started_at, finished_at,
    spawn_key
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
)
ON CONFLICT DO NOTHING;

-- name: InsertRunMetadata :exec
-- All pairs of a run in one statement. Two set-returning functions in one
-- select list advance in lockstep, zipping keys with values.
INSERT INTO run_metadata (run_id, tenant_id, key, value)
SELECT sqlc.arg(run_id), sqlc.arg(tenant_id),
       unnest(sqlc.arg(keys)::text[]), unnest(sqlc.arg(vals)::text[]);

-- name: GetRun :one
SELECT * FROM runs WHERE tenant_id = $1 AND id = $2;

-- name: GetRunForUpdate :one
SELECT * FROM runs WHERE tenant_id = $1 AND id = $2 FOR UPDATE;

-- name: UpdateRun :execrows
UPDATE runs
SET status = $3, output = $4, error = $5, started_at = $6, finished_at = $7
WHERE tenant_id = $1 AND id = $2;

-- name: CountActiveRuns :many
-- Metrics read this on every scrape: the runs_active index holds only
-- queued and running runs, so the count never scans finished ones.
SELECT status, COUNT(*) AS runs FROM runs WHERE status IN ('queued', 'running') GROUP BY status;
