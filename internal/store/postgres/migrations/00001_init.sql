-- +goose Up
-- Times are Unix microseconds (0 = unset); ids are UUIDv7 text.

-- The event log's counter: an append increments it and holds its row lock
-- until commit, so positions follow commit order (see package store).
CREATE TABLE log_head (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    log_id        TEXT    NOT NULL,
    last_position BIGINT  NOT NULL
);

CREATE TABLE tenants (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at BIGINT  NOT NULL
);

CREATE TABLE tokens (
    id         TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id),
    hash       TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL DEFAULT '',
    run_id     TEXT    NOT NULL DEFAULT '',
    meta_key   TEXT    NOT NULL DEFAULT '',
    meta_value TEXT    NOT NULL DEFAULT '',
    expires_at BIGINT  NOT NULL DEFAULT 0,
    created_at BIGINT  NOT NULL
);

CREATE TABLE workflows (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id),
    name       TEXT    NOT NULL,
    definition BYTEA   NOT NULL,
    on_events  TEXT    NOT NULL DEFAULT '[]', -- JSON array of event keys
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE runs (
    id                 TEXT    PRIMARY KEY,
    tenant_id          TEXT    NOT NULL REFERENCES tenants (id),
    workflow           TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    input              BYTEA   NOT NULL,
    output             BYTEA,
    error              TEXT    NOT NULL DEFAULT '',
    metadata           TEXT    NOT NULL DEFAULT '{}', -- JSON object
    parent_run_id      TEXT    NOT NULL DEFAULT '',
    parent_step_run_id TEXT    NOT NULL DEFAULT '',
    created_at         BIGINT  NOT NULL,
    started_at         BIGINT  NOT NULL DEFAULT 0,
    finished_at        BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX runs_tenant_newest ON runs (tenant_id, id DESC);

-- One row per metadata pair, for filters and metadata subscriptions.
CREATE TABLE run_metadata (
    run_id    TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX run_metadata_pair ON run_metadata (tenant_id, key, value, run_id);

CREATE TABLE step_runs (
    id           TEXT    PRIMARY KEY,
    run_id       TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    tenant_id    TEXT    NOT NULL,
    workflow     TEXT    NOT NULL,
    step         TEXT    NOT NULL,
    parents      TEXT    NOT NULL DEFAULT '[]', -- JSON array of step names
    status       TEXT    NOT NULL,
    attempt      BIGINT  NOT NULL DEFAULT 0,
    failures     BIGINT  NOT NULL DEFAULT 0,
    retries      BIGINT  NOT NULL DEFAULT 0,
    backoff_ms   BIGINT  NOT NULL DEFAULT 0,
    timeout_ms   BIGINT  NOT NULL DEFAULT 0,
    worker_id    TEXT    NOT NULL DEFAULT '',
    stream_seq   BIGINT  NOT NULL DEFAULT 0,
    available_at BIGINT  NOT NULL DEFAULT 0,
    timeout_at   BIGINT  NOT NULL DEFAULT 0,
    output       BYTEA,
    error        TEXT    NOT NULL DEFAULT '',
    created_at   BIGINT  NOT NULL,
    started_at   BIGINT  NOT NULL DEFAULT 0,
    finished_at  BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (run_id, step)
);
CREATE INDEX step_runs_queue ON step_runs (tenant_id, workflow, available_at) WHERE status = 'queued';
CREATE INDEX step_runs_worker ON step_runs (worker_id) WHERE status = 'running';
CREATE INDEX step_runs_timeout ON step_runs (timeout_at) WHERE status = 'running' AND timeout_at > 0;

CREATE TABLE step_attempts (
    step_run_id TEXT    NOT NULL REFERENCES step_runs (id) ON DELETE CASCADE,
    run_id      TEXT    NOT NULL,
    attempt     BIGINT  NOT NULL,
    status      TEXT    NOT NULL,
    worker_id   TEXT    NOT NULL DEFAULT '',
    error       TEXT    NOT NULL DEFAULT '',
    started_at  BIGINT  NOT NULL DEFAULT 0,
    finished_at BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (step_run_id, attempt)
);
CREATE INDEX step_attempts_run ON step_attempts (run_id);

CREATE TABLE workers (
    id           TEXT    PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    node_id      TEXT    NOT NULL,
    workflows    TEXT    NOT NULL DEFAULT '[]', -- JSON array of names
    slots        BIGINT  NOT NULL,
    alive        BOOLEAN NOT NULL DEFAULT TRUE,
    heartbeat_at BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX workers_alive ON workers (heartbeat_at) WHERE alive;

-- The run event log. position is the global, commit-ordered position.
CREATE TABLE events (
    position    BIGINT  PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    workflow    TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    step_run_id TEXT    NOT NULL DEFAULT '',
    step        TEXT    NOT NULL DEFAULT '',
    attempt     BIGINT  NOT NULL DEFAULT 0,
    payload     BYTEA,
    data        BYTEA,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX events_run ON events (run_id, position);

-- +goose Down
DROP TABLE events;
DROP TABLE workers;
DROP TABLE step_attempts;
DROP TABLE step_runs;
DROP TABLE run_metadata;
DROP TABLE runs;
DROP TABLE workflows;
DROP TABLE tokens;
DROP TABLE tenants;
DROP TABLE log_head;
