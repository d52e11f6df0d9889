-- +goose Up
-- Positions come from a sequence instead of the log_head counter row, whose
-- row lock serialised every appending transaction until its commit (issue
-- 22). A sequence is not transactional, so positions no longer follow
-- commit order by themselves: readers only read up to the settled horizon
-- (see horizon.go), below which every position's transaction has ended.
-- CACHE 1 (the default) matters: a session caching positions would hand
-- them out out of order with the other sessions'.
CREATE SEQUENCE event_positions AS bigint MINVALUE 1 CACHE 1;
SELECT setval('event_positions', greatest(last_position, 1), last_position > 0)
FROM log_head WHERE id = 1;
-- log_head keeps the log ID; its last_position is no longer kept up.

-- +goose Down
-- +goose StatementBegin
UPDATE log_head SET last_position = (
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_positions
) WHERE id = 1;
-- +goose StatementEnd
DROP SEQUENCE event_positions;
