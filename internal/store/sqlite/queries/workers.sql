-- name: InsertWorker :exec
INSERT INTO workers (id, tenant_id, name, node_id, workflows, slots, alive, heartbeat_at, created_at, previous_id)
VALUES (@id, @tenant_id, @name, @node_id, @workflows, @slots, @alive, @heartbeat_at, @created_at, @previous_id);

-- name: GetWorkerForUpdate :one
SELECT * FROM workers WHERE id = @id;

-- name: MarkWorkerDead :execrows
UPDATE workers SET alive = 0 WHERE id = @id AND alive = 1;

-- name: ListDeadWorkers :many
SELECT * FROM workers
WHERE alive = 1 AND heartbeat_at < @heartbeat_before
ORDER BY heartbeat_at, id
LIMIT @row_limit;

-- name: TouchWorker :execrows
UPDATE workers SET heartbeat_at = @heartbeat_at WHERE id = @id AND tenant_id = @tenant_id AND alive = 1;
