-- Used by Open around applying migrations.

-- name: CurrentSchema :one
-- The schema new tables go to ('' when search_path names none that exists).
SELECT coalesce(current_schema(), '')::text;

-- name: LockMigrations :exec
-- Session advisory lock keyed by schema: engine nodes sharing a schema
-- migrate one at a time, while nodes (and tests) using different schemas of
-- one database do not wait for each other. Released when the session ends.
-- (1381322318 is "RUNN" in ASCII, to keep clear of other applications'
-- advisory locks.)
SELECT pg_advisory_lock(1381322318, hashtext(current_schema()));
