-- Step runs (one row per step of a run, retried in place) and the history of
-- their attempts.

-- name: InsertStepRun :batchone
-- Sent as one pipelined batch for all the steps of a run. A step whose ID
-- (or run and name) is taken returns no row (see CreateTenant for why not an
-- error).
INSERT INTO step_runs (
    id, run_id, tenant_id, workflow, step, parents, status, attempt, failures,
    retries, backoff_ms, timeout_ms, worker_id, stream_seq, available_at,
    timeout_at, output, error, created_at, started_at, finished_at
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
    $17, $18, $19, $20, $21
)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: GetStepRun :one
SELECT * FROM step_runs WHERE id = $1;

-- name: GetStepRunForUpdate :one
SELECT * FROM step_runs WHERE id = $1 FOR UPDATE;

-- name: ListStepRuns :many
SELECT * FROM step_runs WHERE run_id = $1 ORDER BY id;

-- name: ListStepRunsForUpdate :many
-- Rows are locked in id order, the same for every caller, so two
-- transactions locking one run's steps cannot deadlock each other.
SELECT * FROM step_runs WHERE run_id = $1 ORDER BY id FOR UPDATE;

-- name: UpdateStepRun :execrows
UPDATE step_runs
SET status = $2, attempt = $3, failures = $4, retries = $5, backoff_ms = $6,
    timeout_ms = $7, worker_id = $8, stream_seq = $9, available_at = $10,
    timeout_at = $11, output = $12, error = $13, started_at = $14,
    finished_at = $15
WHERE id = $1;

-- name: ListClaimableStepRuns :many
-- Candidates for ClaimStepRun, read without locks: the engine locks each
-- one's run first, then claims the step run if it is still queued.
SELECT * FROM step_runs
WHERE status = 'queued'
  AND tenant_id = sqlc.arg(tenant_id)
  AND workflow = ANY (sqlc.arg(workflows)::text[])
  AND available_at <= sqlc.arg(now)
ORDER BY available_at, id
LIMIT sqlc.arg(row_limit);

-- name: ClaimStepRun :one
-- No row (pgx.ErrNoRows) when the step run is no longer queued: another
-- engine node claimed or cancelled it first.
UPDATE step_runs
SET status = 'running',
    worker_id = sqlc.arg(worker_id),
    attempt = attempt + 1,
    started_at = sqlc.arg(now),
    timeout_at = sqlc.arg(timeout_at),
    finished_at = 0,
    stream_seq = 0,
    error = ''
WHERE id = sqlc.arg(id) AND status = 'queued'
RETURNING *;

-- name: ListTimedOutStepRuns :many
SELECT * FROM step_runs
WHERE status = 'running' AND timeout_at > 0 AND timeout_at <= sqlc.arg(now)
ORDER BY timeout_at, id
LIMIT sqlc.arg(row_limit)
FOR UPDATE SKIP LOCKED;

-- name: ListStepRunsOfWorker :many
SELECT * FROM step_runs
WHERE worker_id = $1 AND status = 'running'
ORDER BY id;

-- name: UpsertStepAttempt :execrows
-- run_id is copied from the step run (it lets a run's attempts be listed by
-- one index); no row is written when the step run does not exist.
INSERT INTO step_attempts (
    step_run_id, run_id, attempt, status, worker_id, error, started_at, finished_at
)
SELECT s.id, s.run_id, sqlc.arg(attempt), sqlc.arg(status), sqlc.arg(worker_id),
       sqlc.arg(error), sqlc.arg(started_at), sqlc.arg(finished_at)
FROM step_runs s
WHERE s.id = sqlc.arg(step_run_id)
ON CONFLICT (step_run_id, attempt) DO UPDATE
SET status = excluded.status,
    worker_id = excluded.worker_id,
    error = excluded.error,
    started_at = excluded.started_at,
    finished_at = excluded.finished_at;

-- name: ListStepAttempts :many
SELECT step_run_id, attempt, status, worker_id, error, started_at, finished_at
FROM step_attempts
WHERE run_id = $1
ORDER BY step_run_id, attempt;
