-- Registered workflow definitions.

-- name: UpsertWorkflow :exec
INSERT INTO workflows (tenant_id, name, definition, on_events, updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, name) DO UPDATE
SET definition = excluded.definition,
    on_events = excluded.on_events,
    updated_at = excluded.updated_at;

-- name: GetWorkflow :one
SELECT * FROM workflows WHERE tenant_id = $1 AND name = $2;

-- name: ListWorkflows :many
SELECT * FROM workflows WHERE tenant_id = $1 ORDER BY name;
