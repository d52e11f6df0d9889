-- name: InsertStepRun :exec
INSERT INTO step_runs (id, run_id, tenant_id, workflow, step, parents, status, attempt, failures, retries, backoff_ms, timeout_ms,
                       worker_id, stream_seq, available_at, timeout_at, output, error, created_at, started_at, finished_at)
VALUES (@id, @run_id, @tenant_id, @workflow, @step, @parents, @status, @attempt, @failures, @retries, @backoff_ms, @timeout_ms,
        @worker_id, @stream_seq, @available_at, @timeout_at, @output, @error, @created_at, @started_at, @finished_at);

-- name: GetStepRun :one
SELECT * FROM step_runs WHERE id = @id;

-- name: GetStepRunForUpdate :one
-- No row locks in SQLite: the write transaction already excludes all others.
SELECT * FROM step_runs WHERE id = @id;

-- name: ListStepRunsForUpdate :many
SELECT * FROM step_runs WHERE run_id = @run_id ORDER BY id;

-- name: ListStepRuns :many
SELECT * FROM step_runs WHERE run_id = @run_id ORDER BY id;

-- name: UpdateStepRun :execrows
-- Every mutable field; id, run, tenant, workflow, step, parents and
-- created_at never change.
UPDATE step_runs SET
    status       = @status,
    attempt      = @attempt,
    failures     = @failures,
    retries      = @retries,
    backoff_ms   = @backoff_ms,
    timeout_ms   = @timeout_ms,
    worker_id    = @worker_id,
    stream_seq   = @stream_seq,
    available_at = @available_at,
    timeout_at   = @timeout_at,
    output       = @output,
    error        = @error,
    started_at   = @started_at,
    finished_at  = @finished_at
WHERE id = @id;

-- name: ListClaimableStepRuns :many
-- Candidates for ClaimStepRun; the caller locks each one's run, then claims
-- the step run if it is still queued.
SELECT * FROM step_runs
WHERE status = 'queued'
  AND tenant_id = @tenant_id
  AND workflow IN (SELECT value FROM json_each(CAST(@workflows AS TEXT)))
  AND available_at <= @now
ORDER BY available_at, id
LIMIT @row_limit;

-- name: ClaimStepRun :one
-- No row (sql.ErrNoRows) when the step run is no longer queued.
UPDATE step_runs SET
    status      = 'running',
    worker_id   = @worker_id,
    attempt     = attempt + 1,
    started_at  = @now,
    timeout_at  = @timeout_at,
    finished_at = 0,
    stream_seq  = 0,
    error       = ''
WHERE id = @id AND status = 'queued'
RETURNING *;

-- name: ListTimedOutStepRuns :many
SELECT * FROM step_runs
WHERE status = 'running' AND timeout_at > 0 AND timeout_at <= @now
ORDER BY timeout_at, id
LIMIT @row_limit;

-- name: ListStepRunsOfWorker :many
SELECT * FROM step_runs WHERE status = 'running' AND worker_id = @worker_id ORDER BY id;

-- name: UpsertStepAttempt :execrows
-- run_id is taken from the step run; no row is written when it is unknown.
-- (The WHERE clause also keeps SQLite from reading ON CONFLICT as a join.)
INSERT INTO step_attempts (step_run_id, run_id, attempt, status, worker_id, error, started_at, finished_at)
SELECT s.id, s.run_id, @attempt, @status, @worker_id, @error, @started_at, @finished_at
FROM step_runs s WHERE s.id = @step_run_id
ON CONFLICT (step_run_id, attempt) DO UPDATE SET
    status      = excluded.status,
    worker_id   = excluded.worker_id,
    error       = excluded.error,
    started_at  = excluded.started_at,
    finished_at = excluded.finished_at;

-- name: ListStepAttempts :many
SELECT * FROM step_attempts WHERE run_id = @run_id ORDER BY step_run_id, attempt;
