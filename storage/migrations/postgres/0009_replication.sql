-- Replication (Harbor's /replication): policies between this registry and
-- a registry endpoint, their executions and one task per repository.
-- A NULL registry is the local one; exactly one side is NULL.

CREATE TABLE replication_policies (
    id                  BIGSERIAL PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    description         TEXT NOT NULL DEFAULT '',
    src_registry_id     BIGINT REFERENCES registries(id),
    dest_registry_id    BIGINT REFERENCES registries(id),
    dest_namespace      TEXT NOT NULL DEFAULT '',
    dest_replace_count  BIGINT NOT NULL DEFAULT -1,
    -- JSON: {"kind": "Manual" | "Scheduled" | "EventBased", "cron": ...}
    trig                TEXT NOT NULL,
    -- JSON: [{"kind": "name", "value": "...", "decoration": "matches"}]
    filters             TEXT NOT NULL,
    replicate_deletion  BIGINT NOT NULL DEFAULT 0,
    override            BIGINT NOT NULL DEFAULT 0,
    enabled             BIGINT NOT NULL DEFAULT 1,
    -- KiB/s per task; -1 is unlimited.
    speed               BIGINT NOT NULL DEFAULT -1,
    copy_by_chunk       BIGINT NOT NULL DEFAULT 0,
    single_active       BIGINT NOT NULL DEFAULT 0,
    -- The last cron second a scheduled policy fired at (claimed by one
    -- process of many).
    last_fired          BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE replication_executions (
    id             BIGSERIAL PRIMARY KEY,
    policy_id      BIGINT NOT NULL REFERENCES replication_policies(id) ON DELETE CASCADE,
    -- InProgress, Succeed, Failed, Stopped
    status         TEXT NOT NULL,
    status_text    TEXT NOT NULL DEFAULT '',
    -- manual, scheduled, event_based
    trig           TEXT NOT NULL,
    start_time     BIGINT NOT NULL,
    end_time       BIGINT,
    stop_requested BIGINT NOT NULL DEFAULT 0,
    -- Written every few seconds by the process running it: an execution
    -- whose heartbeat stopped was left by a process that died.
    heartbeat      BIGINT NOT NULL
);
CREATE INDEX replication_executions_policy ON replication_executions(policy_id, id);
CREATE INDEX replication_executions_running ON replication_executions(status) WHERE status = 'InProgress';

CREATE TABLE replication_tasks (
    id              BIGSERIAL PRIMARY KEY,
    execution_id    BIGINT NOT NULL REFERENCES replication_executions(id) ON DELETE CASCADE,
    resource_type   TEXT NOT NULL,
    src_resource    TEXT COLLATE "C" NOT NULL,
    dst_resource    TEXT COLLATE "C" NOT NULL,
    -- copy or deletion
    operation       TEXT NOT NULL,
    -- Pending, InProgress, Succeed, Failed, Stopped
    status          TEXT NOT NULL,
    bytes           BIGINT NOT NULL DEFAULT 0,
    artifacts_done  BIGINT NOT NULL DEFAULT 0,
    artifacts_total BIGINT NOT NULL DEFAULT 0,
    log             TEXT NOT NULL DEFAULT '',
    start_time      BIGINT NOT NULL,
    end_time        BIGINT
);
CREATE INDEX replication_tasks_execution ON replication_tasks(execution_id, id);
