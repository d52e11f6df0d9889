-- name: CreateTenant :exec
INSERT INTO tenants (id, name, created_at) VALUES (@id, @name, @created_at);

-- name: GetTenant :one
SELECT * FROM tenants WHERE id = @id;

-- name: GetTenantByName :one
SELECT * FROM tenants WHERE name = @name;

-- name: CountTenants :one
SELECT COUNT(*) FROM tenants;

-- name: CreateToken :exec
INSERT INTO tokens (id, tenant_id, hash, kind, name, run_id, meta_key, meta_value, expires_at, created_at, created_by, stream)
VALUES (@id, @tenant_id, @hash, @kind, @name, @run_id, @meta_key, @meta_value, @expires_at, @created_at, @created_by, @stream);

-- name: LookupToken :one
-- Expired tokens are returned too: the caller checks expires_at.
SELECT * FROM tokens WHERE hash = @hash;

-- name: ListTokens :many
-- API and admin tokens of every tenant, oldest first; browser tokens are
-- short-lived and many, and not listed.
SELECT tokens.*, tenants.name AS tenant_name
FROM tokens JOIN tenants ON tenants.id = tokens.tenant_id
WHERE tokens.kind <> 'browser'
ORDER BY tokens.created_at, tokens.id;

-- name: GetTokenByID :one
SELECT * FROM tokens WHERE id = @id;

-- name: RevokeToken :many
-- The token and the browser tokens it minted, those not yet revoked.
UPDATE tokens SET revoked_at = @now
WHERE revoked_at = 0 AND (id = @id OR (created_by = @id AND kind = 'browser'))
RETURNING id;
