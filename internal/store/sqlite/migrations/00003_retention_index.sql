-- +goose Up
-- Retention looks for finished runs older than a cutoff once a minute on
-- every node: index them, not the runs still in flight.
CREATE INDEX runs_finished ON runs (finished_at) WHERE status IN ('completed', 'failed', 'cancelled', 'timed_out');

-- +goose Down
DROP INDEX runs_finished;
