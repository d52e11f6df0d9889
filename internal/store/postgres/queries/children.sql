-- Child runs: spawned from a step of a parent run (see 00002_children.sql).

-- name: GetChildRunBySpawnKey :one
SELECT * FROM runs
WHERE parent_step_run_id = $1 AND spawn_key = $2 AND spawn_key <> '';

-- name: ListChildRuns :many
SELECT * FROM runs
WHERE tenant_id = $1 AND parent_run_id = $2 AND parent_run_id <> ''
ORDER BY created_at, id;

-- name: ListActiveChildRuns :many
SELECT * FROM runs
WHERE parent_run_id = $1 AND parent_run_id <> '' AND status IN ('queued', 'running')
ORDER BY created_at, id;

-- name: ListOrphanedChildRuns :many
-- Unfinished children whose parent failed, was cancelled or timed out: the
-- cascade that should have cancelled them did not run to the end (the node
-- stopped after the parent's commit). runs_active_children keeps the outer
-- scan to unfinished children. No row locks: the caller cancels each child
-- in a transaction of its own, which locks it and checks it again.
SELECT * FROM runs c
WHERE c.parent_run_id <> '' AND c.status IN ('queued', 'running')
  AND EXISTS (
    SELECT 1 FROM runs p
    WHERE p.id = c.parent_run_id AND p.status IN ('failed', 'cancelled', 'timed_out')
  )
ORDER BY c.id
LIMIT sqlc.arg(row_limit);
