-- +goose Up
-- Child runs (spawned from a step). spawn_key makes a spawn idempotent: the
-- engine stores "<parent attempt>:<key the SDK sent>", so a request sent again
-- after a lost reply finds the run it created, while a retried parent step
-- (a new attempt) spawns fresh children. '' means "no key" (top-level runs,
-- event-triggered runs) and is left out of the unique index.
ALTER TABLE runs ADD COLUMN spawn_key TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX runs_spawn_key ON runs (parent_step_run_id, spawn_key) WHERE spawn_key <> '';
-- Children of a run, oldest first (ListChildRuns).
CREATE INDEX runs_parent ON runs (parent_run_id, created_at, id) WHERE parent_run_id <> '';
-- Unfinished children only: the cancellation cascade and the sweep for
-- children whose parent ended badly read this small index, not every child
-- run kept for retention.
CREATE INDEX runs_active_children ON runs (parent_run_id) WHERE parent_run_id <> '' AND status IN ('queued', 'running');

-- +goose Down
DROP INDEX runs_active_children;
DROP INDEX runs_parent;
DROP INDEX runs_spawn_key;
ALTER TABLE runs DROP COLUMN spawn_key;
