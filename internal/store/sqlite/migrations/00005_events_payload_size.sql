-- +goose Up
-- A run's events are read a page at a time, and a page stops at a byte
-- budget; knowing where it stops took reading every row of the page twice
-- (once for length(payload), once for the rows). With the payload's size
-- in the run index, finding the page's end reads the index alone.
ALTER TABLE events ADD COLUMN payload_size INTEGER NOT NULL DEFAULT 0;
UPDATE events SET payload_size = COALESCE(length(payload), 0);
CREATE INDEX events_run_sized ON events (run_id, position, payload_size);
DROP INDEX events_run;

-- +goose Down
CREATE INDEX events_run ON events (run_id, position);
DROP INDEX events_run_sized;
ALTER TABLE events DROP COLUMN payload_size;
