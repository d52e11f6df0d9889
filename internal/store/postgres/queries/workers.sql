-- Worker connections and their heartbeats.

-- name: InsertWorker :execrows
-- Zero rows: the ID is taken (see CreateTenant for why not an error).
INSERT INTO workers (
    id, tenant_id, name, node_id, workflows, slots, alive, heartbeat_at, created_at, previous_id
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
)
ON CONFLICT DO NOTHING;

-- name: GetWorkerForUpdate :one
SELECT * FROM workers WHERE id = $1 FOR UPDATE;

-- name: MarkWorkerDead :execrows
UPDATE workers SET alive = FALSE WHERE id = $1 AND alive;

-- name: ListDeadWorkers :many
SELECT * FROM workers
WHERE alive AND heartbeat_at < sqlc.arg(heartbeat_before)
ORDER BY heartbeat_at, id
LIMIT sqlc.arg(row_limit)
FOR UPDATE SKIP LOCKED;

-- name: TouchWorker :execrows
UPDATE workers SET heartbeat_at = $3 WHERE id = $1 AND tenant_id = $2 AND alive;
