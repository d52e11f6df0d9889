-- name: InsertDurableStream :execrows
-- Zero rows: the name is taken.
INSERT INTO durable_streams (id, tenant_id, name, content_type, ttl_seconds, expires_at, closed, closed_by, last_seq, fork_source_id, fork_offset, fork_sub_offset, accessed_at, created_at)
VALUES (@id, @tenant_id, @name, @content_type, @ttl_seconds, @expires_at, @closed, @closed_by, @last_seq, @fork_source_id, @fork_offset, @fork_sub_offset, @accessed_at, @created_at)
ON CONFLICT DO NOTHING;

-- name: GetDurableStream :one
SELECT * FROM durable_streams WHERE tenant_id = @tenant_id AND name = @name;

-- name: GetDurableStreamForUpdate :one
SELECT * FROM durable_streams WHERE tenant_id = @tenant_id AND name = @name FOR UPDATE;

-- name: UpdateDurableStream :execrows
UPDATE durable_streams
SET closed = @closed, closed_by = @closed_by, last_seq = @last_seq, deleted = @deleted, accessed_at = @accessed_at
WHERE id = @id;

-- name: TouchDurableStream :exec
UPDATE durable_streams SET accessed_at = @accessed_at WHERE id = @id;

-- name: DeleteDurableStream :exec
DELETE FROM durable_streams WHERE id = @id;

-- name: DeleteDurableStreamProducers :exec
DELETE FROM durable_stream_producers WHERE stream_id = @stream_id;

-- name: DeleteDurableStreamEvents :exec
DELETE FROM events WHERE run_id = @run_id;

-- name: GetDurableProducer :one
SELECT * FROM durable_stream_producers WHERE stream_id = @stream_id AND producer_id = @producer_id;

-- name: UpsertDurableProducer :exec
INSERT INTO durable_stream_producers (stream_id, producer_id, epoch, last_seq)
VALUES (@stream_id, @producer_id, @epoch, @last_seq)
ON CONFLICT (stream_id, producer_id) DO UPDATE SET epoch = excluded.epoch, last_seq = excluded.last_seq;

-- name: ListDurableStreams :many
SELECT * FROM durable_streams WHERE tenant_id = @tenant_id ORDER BY name;

-- name: GetDurableStreamByID :one
SELECT * FROM durable_streams WHERE id = @id;

-- name: CountDurableForks :one
SELECT COUNT(*) FROM durable_streams WHERE fork_source_id = @source_id;
