-- +goose Up
-- Tokens can be revoked (revoked_at, 0 = not revoked), and a browser token
-- records the token that minted it (created_by), so revoking a leaked API
-- token also revokes the browser tokens it handed out.
ALTER TABLE tokens ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
CREATE INDEX tokens_created_by ON tokens (created_by) WHERE created_by <> '';

-- +goose Down
DROP INDEX tokens_created_by;
ALTER TABLE tokens DROP COLUMN created_by;
ALTER TABLE tokens DROP COLUMN revoked_at;
