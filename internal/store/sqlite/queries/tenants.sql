-- name: CreateTenant :exec
INSERT INTO tenants (id, name, created_at) VALUES (@id, @name, @created_at);

-- name: GetTenant :one
SELECT * FROM tenants WHERE id = @id;

-- name: GetTenantByName :one
SELECT * FROM tenants WHERE name = @name;

-- name: CountTenants :one
SELECT COUNT(*) FROM tenants;

-- name: CreateToken :exec
INSERT INTO tokens (id, tenant_id, hash, kind, name, run_id, meta_key, meta_value, expires_at, created_at)
VALUES (@id, @tenant_id, @hash, @kind, @name, @run_id, @meta_key, @meta_value, @expires_at, @created_at);

-- name: LookupToken :one
-- Expired tokens are returned too: the caller checks expires_at.
SELECT * FROM tokens WHERE hash = @hash;
