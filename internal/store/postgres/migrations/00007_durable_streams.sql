-- +goose Up
-- Standalone durable streams (issue 21): named per tenant, outside runs.
-- Their data lives in the events table like a run's stream, with run_id =
-- the stream's id (a "ds_" UUID that never names a run), so appends get
-- log positions, commit order and wake-ups exactly as run events do.
CREATE TABLE durable_streams (
    id            TEXT    PRIMARY KEY,
    tenant_id     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    ttl_seconds   BIGINT  NOT NULL DEFAULT 0, -- sliding TTL; 0: none
    expires_at    BIGINT  NOT NULL DEFAULT 0, -- absolute expiry, unix micros; 0: none
    closed        BOOLEAN NOT NULL DEFAULT FALSE,
    closed_by     TEXT    NOT NULL DEFAULT '', -- producer id/epoch/seq of the closing append
    last_seq      TEXT    NOT NULL DEFAULT '', -- last Stream-Seq accepted
    -- A fork (PUT with Stream-Forked-From) reads its source's events up to
    -- fork_offset (a position), copy-free, then its own.
    fork_source_id  TEXT    NOT NULL DEFAULT '',
    fork_offset     BIGINT  NOT NULL DEFAULT 0,
    fork_sub_offset BIGINT  NOT NULL DEFAULT 0,
    -- Deleted while forks still read it: kept (410 Gone) until the last
    -- fork is deleted.
    deleted       BOOLEAN NOT NULL DEFAULT FALSE,
    accessed_at   BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX durable_streams_fork_source ON durable_streams (fork_source_id) WHERE fork_source_id <> '';

-- Idempotent producer state, one row per (stream, producer id).
CREATE TABLE durable_stream_producers (
    stream_id   TEXT   NOT NULL,
    producer_id TEXT   NOT NULL,
    epoch       BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    PRIMARY KEY (stream_id, producer_id)
);

-- +goose Down
DROP TABLE durable_stream_producers;
DROP TABLE durable_streams;
