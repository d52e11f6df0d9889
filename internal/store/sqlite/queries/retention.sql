-- Retention: finished runs older than the configured age are deleted with
-- everything that belongs to them, a batch at a time (see
-- store.Tx.DeleteFinishedRuns).

-- name: ListExpiredRuns :many
-- A batch of terminal runs finished before finished_before, oldest first.
-- Skipped, to be deleted on a later pass once they no longer apply:
--   - a parent with unfinished children (a completed run leaves its children
--     running): the cancellation cascade and the orphan sweep find those
--     children through their parent's row (runs_active_children keeps this
--     check to an index probe);
--   - a child whose parent is still queued or running, since the parent's
--     step may still read it (by spawn key, or the child's output).
-- The single writer keeps the batch stable until it is deleted, so there is
-- nothing to lock (PostgreSQL uses FOR UPDATE SKIP LOCKED here).
SELECT r.id FROM runs r
WHERE r.status IN ('completed', 'failed', 'cancelled', 'timed_out')
  AND r.finished_at > 0
  AND r.finished_at < @finished_before
  AND NOT EXISTS (
    SELECT 1 FROM runs c
    WHERE c.parent_run_id = r.id AND c.parent_run_id <> '' AND c.status IN ('queued', 'running')
  )
  AND NOT EXISTS (
    SELECT 1 FROM runs p
    WHERE r.parent_run_id <> '' AND p.id = r.parent_run_id AND p.status IN ('queued', 'running')
  )
ORDER BY r.finished_at, r.id
LIMIT @row_limit;

-- name: DeleteRunEvents :execrows
-- Events have no foreign key to runs (the log is append-only and
-- position-ordered), so they are deleted by run_id, off events_run_sized. run_ids
-- is a JSON array, as in ListClaimableStepRuns: one statement whatever the batch.
DELETE FROM events WHERE run_id IN (SELECT value FROM json_each(CAST(@run_ids AS TEXT)));

-- name: DeleteRuns :execrows
-- step_runs and run_metadata go with their run, and step_attempts with their
-- step run, by ON DELETE CASCADE (00001_init.sql; the store opens every
-- connection with foreign_keys on).
DELETE FROM runs WHERE id IN (SELECT value FROM json_each(CAST(@run_ids AS TEXT)));
