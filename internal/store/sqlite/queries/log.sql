-- name: InitLogHead :exec
-- Creates the counter row on first open; a no-op afterwards.
INSERT INTO log_head (id, log_id, last_position) VALUES (1, @log_id, 0)
ON CONFLICT (id) DO NOTHING;

-- name: GetLogID :one
SELECT log_id FROM log_head WHERE id = 1;

-- name: BumpLogHead :one
-- Reserves n positions; returns the last of them.
UPDATE log_head SET last_position = last_position + @n WHERE id = 1
RETURNING last_position;

-- name: AppendEvent :exec
INSERT INTO events (position, tenant_id, run_id, workflow, type, step_run_id, step, attempt, payload, data, created_at, payload_size, stream)
VALUES (@position, @tenant_id, @run_id, @workflow, @type, @step_run_id, @step, @attempt, @payload, @data, @created_at, @payload_size, @stream);

-- name: ReadEvents :many
-- (Store.ReadEvents steps through a plain page query instead and stops at the
-- byte limit itself, see read.go; this statement gives the row type.)
-- A page of a run's events after a position, in one statement. With a byte
-- limit, the scalar subquery finds where the page ends: it walks the same
-- page on events_run_sized alone (the index holds each payload's size, so
-- no row is read), and keeps each event while the payloads before it stay
-- below max_bytes, so the page always has its first event. The outer query
-- then reads the rows straight off the index, in order, with no sort. (The
-- subquery needs no tenant filter: a run id belongs to one tenant, and the
-- outer query checks it.)
SELECT e.position, e.tenant_id, e.run_id, e.workflow, e.type, e.step_run_id, e.step, e.attempt, e.payload, e.data, e.created_at, e.stream
FROM events e
WHERE e.tenant_id = @tenant_id AND e.run_id = @run_id AND e.position > @after
  AND e.position <= CASE WHEN CAST(@max_bytes AS INTEGER) = 0 THEN 9223372036854775807 ELSE (
      SELECT COALESCE(MAX(p.position), 0)
      FROM (
          SELECT w.position, SUM(w.payload_size) OVER (ORDER BY w.position ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS bytes_before
          FROM (
              SELECT x.position, x.payload_size
              FROM events x
              WHERE x.run_id = @run_id AND x.position > @after
              ORDER BY x.position
              LIMIT @page_limit
          ) w
      ) p
      WHERE COALESCE(p.bytes_before, 0) < CAST(@max_bytes AS INTEGER)
  ) END
ORDER BY e.position
LIMIT @page_limit;

-- name: LastRunPosition :one
-- 0 when the run has no events. ORDER BY ... LIMIT 1 walks events_run_sized
-- backwards and stops at the first match, whatever the tenant filter.
SELECT CAST(COALESCE((
    SELECT x.position FROM events x
    WHERE x.tenant_id = @tenant_id AND x.run_id = @run_id
    ORDER BY x.position DESC
    LIMIT 1
), 0) AS INTEGER) AS position;

-- name: LastStreamPosition :one
-- The newest step.stream event of a run on one of the streams (a JSON array;
-- all streams when any_stream): walks events_run backwards to the first match.
SELECT CAST(COALESCE((
    SELECT x.position FROM events x
    WHERE x.tenant_id = @tenant_id AND x.run_id = @run_id
      AND x.type = 'step.stream'
      AND (CAST(@any_stream AS INTEGER) <> 0 OR x.stream IN (SELECT value FROM json_each(CAST(@streams AS TEXT))))
    ORDER BY x.position DESC
    LIMIT 1
), 0) AS INTEGER) AS position;

-- name: StreamClosed :one
SELECT EXISTS (
    SELECT 1 FROM events
    WHERE step_run_id = @step_run_id AND attempt = @attempt
      AND stream = @stream AND type = 'step.stream_closed'
) AS closed;
