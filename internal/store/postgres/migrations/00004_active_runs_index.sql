-- +goose Up
-- The runs-active gauge counts queued and running runs on every metrics
-- scrape: index only those, so the count stays cheap however many finished
-- runs retention keeps.
CREATE INDEX runs_active ON runs (status) WHERE status IN ('queued', 'running');

-- +goose Down
DROP INDEX runs_active;
