-- +goose Up
-- The worker id a registration named as its previous one: a worker whose
-- registration answer was lost registers again naming the same previous id,
-- and the engine follows this link to find the attempts the lost
-- registration already re-attached (issue 16).
ALTER TABLE workers ADD COLUMN previous_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE workers DROP COLUMN previous_id;
