-- Metadata subscriptions: the events of every run carrying a metadata pair,
-- in position order.

-- name: ReadMetadataEvents :many
-- A page of the events, after a position, of the tenant's runs whose
-- metadata has key = value. The page is found run by run rather than by
-- scanning the log: run_metadata_pair gives the matching runs, and for each
-- the LATERAL subquery takes at most a page of positions after @after off
-- events_run (an index-only scan), so the cost is one index seek and at
-- most a page of index entries per matching run, then a top-N sort of
-- positions, whatever the size of the log and of each run. (A plain join
-- would sort every remaining event of every matching run for each page.)
--
-- Only the page's rows are then read, by position, with the byte limit of
-- ReadEvents: a row is kept while the payloads before it in the page stay
-- below max_bytes (octet_length() does not detoast), so the page always
-- has its first event, and payloads past the limit are never sent.
SELECT position, tenant_id, run_id, workflow, type, step_run_id, step, attempt,
       payload, data, created_at, stream
FROM (
    SELECT e.position, e.tenant_id, e.run_id, e.workflow, e.type, e.step_run_id,
           e.step, e.attempt, e.payload, e.data, e.created_at, e.stream,
           coalesce(sum(octet_length(e.payload)) OVER (
               ORDER BY e.position ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ), 0)::bigint AS bytes_before
    FROM (
        SELECT x.position
        FROM run_metadata m
        CROSS JOIN LATERAL (
            SELECT y.position
            FROM events y
            WHERE y.run_id = m.run_id AND y.position > sqlc.arg(after)::bigint
            ORDER BY y.position
            LIMIT sqlc.arg(page_limit)::int
        ) x
        WHERE m.tenant_id = sqlc.arg(tenant_id)
          AND m.key = sqlc.arg(key)
          AND m.value = sqlc.arg(value)
        ORDER BY x.position
        LIMIT sqlc.arg(page_limit)::int
    ) page
    JOIN events e ON e.position = page.position
    WHERE e.tenant_id = sqlc.arg(tenant_id)
    ORDER BY e.position
) sized
WHERE sqlc.arg(max_bytes)::bigint = 0 OR bytes_before < sqlc.arg(max_bytes)::bigint
ORDER BY position;

-- name: LastPosition :one
-- The counter's committed value: the transaction that set it committed, and
-- every transaction with lower positions committed before it (see
-- BumpLogHead).
SELECT last_position FROM log_head WHERE id = 1;
