-- The event log: its counter row (log_head) and the events table.

-- name: InitLogHead :exec
-- Creates the counter row on first open; later opens (or other nodes racing
-- the first one) leave it alone, so the log ID never changes.
INSERT INTO log_head (id, log_id, last_position)
VALUES (1, sqlc.arg(log_id), 0)
ON CONFLICT (id) DO NOTHING;

-- name: GetLogID :one
SELECT log_id FROM log_head WHERE id = 1;

-- name: BumpLogHead :one
-- Takes n positions. The row lock it leaves behind serialises appenders until
-- their commit, which is what makes positions follow commit order.
UPDATE log_head
SET last_position = last_position + sqlc.arg(n)::bigint
WHERE id = 1
RETURNING last_position;

-- name: AppendEvent :batchexec
-- Small appends: the rows go out in one pipelined batch (one round trip).
INSERT INTO events (
    position, tenant_id, run_id, workflow, type, step_run_id, step, attempt,
    payload, data, created_at, stream
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
);

-- name: CopyEvents :copyfrom
-- Large appends: COPY, the fastest way to load many rows.
INSERT INTO events (
    position, tenant_id, run_id, workflow, type, step_run_id, step, attempt,
    payload, data, created_at, stream
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
);

-- name: NotifyEvents :exec
-- One notification per appending transaction, delivered at commit, so other
-- engine nodes can wake their readers.
SELECT pg_notify(sqlc.arg(channel)::text, sqlc.arg(payload)::text);

-- name: ReadEvents :many
-- A page of a run's events after a position. The running payload total is
-- computed in the server so that payloads past max_bytes are never sent: a
-- row is kept while the payloads before it stay below max_bytes, so the page
-- always has at least one event and stops at the first one reaching it.
-- The page is cut (LIMIT) before the window sum: a window is evaluated
-- before the LIMIT of its own query level, so a sum over the unlimited rows
-- would read every remaining event of the run for each page.
SELECT position, tenant_id, run_id, workflow, type, step_run_id, step, attempt,
       payload, data, created_at, stream
FROM (
    SELECT p.position, p.tenant_id, p.run_id, p.workflow, p.type, p.step_run_id,
           p.step, p.attempt, p.payload, p.data, p.created_at, p.stream,
           coalesce(sum(octet_length(p.payload)) OVER (
               ORDER BY p.position ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ), 0)::bigint AS bytes_before
    FROM (
        SELECT e.position, e.tenant_id, e.run_id, e.workflow, e.type, e.step_run_id,
               e.step, e.attempt, e.payload, e.data, e.created_at, e.stream
        FROM events e
        WHERE e.tenant_id = sqlc.arg(tenant_id)
          AND e.run_id = sqlc.arg(run_id)
          AND e.position > sqlc.arg(after)
        ORDER BY e.position
        LIMIT sqlc.arg(page_limit)
    ) p
) page
WHERE sqlc.arg(max_bytes)::bigint = 0 OR bytes_before < sqlc.arg(max_bytes)::bigint
ORDER BY position;

-- name: LastRunPosition :one
SELECT coalesce(max(position), 0)::bigint
FROM events
WHERE tenant_id = sqlc.arg(tenant_id) AND run_id = sqlc.arg(run_id);

-- name: LastStreamPosition :one
-- The newest step.stream event of a run on one of the streams (all streams
-- when any_stream): walks events_run backwards and stops at the first match.
SELECT coalesce((
    SELECT x.position FROM events x
    WHERE x.tenant_id = sqlc.arg(tenant_id) AND x.run_id = sqlc.arg(run_id)
      AND x.type = 'step.stream'
      AND (sqlc.arg(any_stream)::boolean OR x.stream = ANY(sqlc.arg(streams)::text[]))
    ORDER BY x.position DESC
    LIMIT 1
), 0)::bigint AS position;

-- name: StreamClosed :one
SELECT EXISTS (
    SELECT 1 FROM events
    WHERE step_run_id = sqlc.arg(step_run_id) AND attempt = sqlc.arg(attempt)
      AND stream = sqlc.arg(stream) AND type = 'step.stream_closed'
);
