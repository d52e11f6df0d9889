-- +goose Up
-- Browser tokens for one standalone durable stream (issue 21): the stream's
-- name; such a token reads that stream and nothing else.
ALTER TABLE tokens ADD COLUMN stream TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tokens DROP COLUMN stream;
