-- Metadata subscriptions: the events of every run carrying a metadata pair,
-- in position order.

-- name: ReadMetadataEvents :many
-- A page of the events, after a position, of the tenant's runs whose
-- metadata has key = value. The page is found run by run rather than by
-- scanning the log: run_metadata_pair gives the matching runs, and each
-- one's events after @after come in position order off events_run_sized (a
-- covering index, so no row is read), so the cost is one index seek per
-- matching run plus the page, whatever the size of the log. With ORDER BY
-- and LIMIT over such an ordered inner loop, SQLite leaves a run's index
-- range as soon as its next position could not enter the page, so a run
-- with many events costs no more than a page of them.
--
-- Only then are the page's rows read, by position, with the byte limit of
-- ReadEvents: a row is kept while the payloads before it in the page stay
-- below max_bytes (length() of a blob does not load it), so the page always
-- has its first event.
WITH page AS (
    SELECT x.position
    FROM run_metadata m
    JOIN events x ON x.run_id = m.run_id
    WHERE m.tenant_id = @tenant_id AND m.key = @key AND m.value = @value
      AND x.position > @after
    ORDER BY x.position
    LIMIT @page_limit
), sized AS (
    SELECT p.position,
           SUM(COALESCE(length(s.payload), 0)) OVER (ORDER BY p.position ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS bytes_before
    FROM page p
    JOIN events s ON s.position = p.position
)
SELECT e.position, e.tenant_id, e.run_id, e.workflow, e.type, e.step_run_id, e.step, e.attempt, e.payload, e.data, e.created_at, e.stream
FROM events e
WHERE e.tenant_id = @tenant_id
  AND e.position IN (
      SELECT z.position FROM sized z
      WHERE CAST(@max_bytes AS INTEGER) = 0 OR COALESCE(z.bytes_before, 0) < CAST(@max_bytes AS INTEGER)
  )
ORDER BY e.position;

-- name: LastPosition :one
-- The counter's committed value: every position at or below it committed
-- (the single writer commits positions in order).
SELECT last_position FROM log_head WHERE id = 1;
