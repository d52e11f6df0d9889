-- name: UpsertWorkflow :exec
INSERT INTO workflows (tenant_id, name, definition, on_events, updated_at)
VALUES (@tenant_id, @name, @definition, @on_events, @updated_at)
ON CONFLICT (tenant_id, name) DO UPDATE SET
    definition = excluded.definition,
    on_events  = excluded.on_events,
    updated_at = excluded.updated_at;

-- name: GetWorkflow :one
SELECT * FROM workflows WHERE tenant_id = @tenant_id AND name = @name;

-- name: ListWorkflows :many
SELECT * FROM workflows WHERE tenant_id = @tenant_id ORDER BY name;
