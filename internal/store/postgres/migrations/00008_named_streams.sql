-- +goose Up
-- Named streams (issue 21): a step may put to several streams of its run.
-- '' is the default (unnamed) stream, so every existing event stays on it.
ALTER TABLE events ADD COLUMN stream TEXT NOT NULL DEFAULT '';
-- Closing a stream is an event; the appender asks this small index whether
-- an attempt's stream was closed before it stores more on it.
CREATE INDEX events_stream_closed ON events (step_run_id, attempt, stream) WHERE type = 'step.stream_closed';

-- +goose Down
DROP INDEX events_stream_closed;
ALTER TABLE events DROP COLUMN stream;
