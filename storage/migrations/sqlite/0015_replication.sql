-- Replication (Harbor's /replication): policies between this registry and
-- a registry endpoint, their executions and one task per repository.
-- A NULL registry is the local one; exactly one side is NULL.

CREATE TABLE replication_policies (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT NOT NULL UNIQUE,
    description         TEXT NOT NULL DEFAULT '',
    src_registry_id     INTEGER REFERENCES registries(id),
    dest_registry_id    INTEGER REFERENCES registries(id),
    dest_namespace      TEXT NOT NULL DEFAULT '',
    dest_replace_count  INTEGER NOT NULL DEFAULT -1,
    -- JSON: {"kind": "Manual" | "Scheduled" | "EventBased", "cron": ...}
    trig                TEXT NOT NULL,
    -- JSON: [{"kind": "name", "value": "...", "decoration": "matches"}]
    filters             TEXT NOT NULL,
    replicate_deletion  INTEGER NOT NULL DEFAULT 0,
    override            INTEGER NOT NULL DEFAULT 0,
    enabled             INTEGER NOT NULL DEFAULT 1,
    -- KiB/s per task; -1 is unlimited.
    speed               INTEGER NOT NULL DEFAULT -1,
    copy_by_chunk       INTEGER NOT NULL DEFAULT 0,
    single_active       INTEGER NOT NULL DEFAULT 0,
    -- The last cron second a scheduled policy fired at (claimed by one
    -- process of many).
    last_fired          INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE replication_executions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_id      INTEGER NOT NULL REFERENCES replication_policies(id) ON DELETE CASCADE,
    -- InProgress, Succeed, Failed, Stopped
    status         TEXT NOT NULL,
    status_text    TEXT NOT NULL DEFAULT '',
    -- manual, scheduled, event_based
    trig           TEXT NOT NULL,
    start_time     INTEGER NOT NULL,
    end_time       INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    -- Written every few seconds by the process running it: an execution
    -- whose heartbeat stopped was left by a process that died.
    heartbeat      INTEGER NOT NULL
);
CREATE INDEX replication_executions_policy ON replication_executions(policy_id, id);
CREATE INDEX replication_executions_running ON replication_executions(status) WHERE status = 'InProgress';

CREATE TABLE replication_tasks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id    INTEGER NOT NULL REFERENCES replication_executions(id) ON DELETE CASCADE,
    resource_type   TEXT NOT NULL,
    src_resource    TEXT NOT NULL,
    dst_resource    TEXT NOT NULL,
    -- copy or deletion
    operation       TEXT NOT NULL,
    -- Pending, InProgress, Succeed, Failed, Stopped
    status          TEXT NOT NULL,
    bytes           INTEGER NOT NULL DEFAULT 0,
    artifacts_done  INTEGER NOT NULL DEFAULT 0,
    artifacts_total INTEGER NOT NULL DEFAULT 0,
    log             TEXT NOT NULL DEFAULT '',
    start_time      INTEGER NOT NULL,
    end_time        INTEGER
);
CREATE INDEX replication_tasks_execution ON replication_tasks(execution_id, id);
