-- Tenants and their API tokens.

-- Inserts that can hit a unique key use ON CONFLICT DO NOTHING and report
-- zero rows instead of raising 23505: an error would abort the whole
-- PostgreSQL transaction, while the store's contract (and SQLite) lets the
-- caller carry on after store.ErrConflict.

-- name: CreateTenant :execrows
INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING;

-- name: GetTenant :one
SELECT * FROM tenants WHERE id = $1;

-- name: GetTenantByName :one
SELECT * FROM tenants WHERE name = $1;

-- name: CountTenants :one
SELECT count(*) FROM tenants;

-- name: CreateToken :execrows
INSERT INTO tokens (
    id, tenant_id, hash, kind, name, run_id, meta_key, meta_value, expires_at, created_at, created_by, stream
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
)
ON CONFLICT DO NOTHING;

-- name: LookupToken :one
-- Expired tokens are returned too: the caller decides (and can say why it
-- refuses one).
SELECT * FROM tokens WHERE hash = $1;

-- name: ListTokens :many
-- API and admin tokens of every tenant, oldest first; browser tokens are
-- short-lived and many, and not listed.
SELECT tokens.*, tenants.name AS tenant_name
FROM tokens JOIN tenants ON tenants.id = tokens.tenant_id
WHERE tokens.kind <> 'browser'
ORDER BY tokens.created_at, tokens.id;

-- name: GetTokenByIDForUpdate :one
SELECT * FROM tokens WHERE id = $1 FOR UPDATE;

-- name: RevokeToken :many
-- The token and the browser tokens it minted, those not yet revoked.
UPDATE tokens SET revoked_at = sqlc.arg(now)
WHERE revoked_at = 0 AND (id = sqlc.arg(id) OR (created_by = sqlc.arg(id) AND kind = 'browser'))
RETURNING id;
