-- Project quotas, tag immutability rules and tag retention policies.

-- One storage quota per project (Harbor's quota, referenced by project).
-- hard_storage is in bytes; -1 means unlimited. Usage is not stored: it is
-- computed from repo_blobs and manifests inside the transaction that
-- changes them (see storage/src/quota.rs), so nothing can drift.
CREATE TABLE quotas (
    id           INTEGER PRIMARY KEY,
    project_id   INTEGER NOT NULL UNIQUE REFERENCES projects(id) ON DELETE CASCADE,
    hard_storage INTEGER NOT NULL DEFAULT -1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

INSERT INTO quotas (project_id, hard_storage, created_at, updated_at)
SELECT id, -1, created_at, created_at FROM projects WHERE true;

-- Every project has a quota row, however it was created; the project API
-- then sets the configured default in the same transaction.
CREATE TRIGGER projects_quota AFTER INSERT ON projects
BEGIN
    INSERT INTO quotas (project_id, hard_storage, created_at, updated_at)
    VALUES (new.id, -1, new.created_at, new.created_at);
END;

-- Tag immutability rules (Harbor's ImmutableRule). Selectors are kept as
-- the JSON the API received, validated before they are stored.
CREATE TABLE immutable_rules (
    id              INTEGER PRIMARY KEY,
    project_id      INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    priority        INTEGER NOT NULL DEFAULT 0,
    disabled        INTEGER NOT NULL DEFAULT 0,
    tag_selectors   TEXT NOT NULL,
    scope_selectors TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX immutable_rules_project ON immutable_rules(project_id);

-- Tag retention: at most one policy per project (Harbor's retention_id
-- project metadata). rules and trig hold the validated API JSON.
CREATE TABLE retention_policies (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL UNIQUE REFERENCES projects(id) ON DELETE CASCADE,
    algorithm   TEXT NOT NULL DEFAULT 'or',
    rules       TEXT NOT NULL,
    trig        TEXT NOT NULL,
    -- The cron second a schedule last fired for, claimed with a
    -- conditional UPDATE so that several berth processes fire it once.
    last_fired  INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE retention_executions (
    id          INTEGER PRIMARY KEY,
    policy_id   INTEGER NOT NULL REFERENCES retention_policies(id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    trig        TEXT NOT NULL,
    dry_run     INTEGER NOT NULL,
    start_time  INTEGER NOT NULL,
    end_time    INTEGER
);
CREATE INDEX retention_executions_policy ON retention_executions(policy_id, id);

-- One task per repository an execution looked at; log lists each
-- artifact's fate, one line each.
CREATE TABLE retention_tasks (
    id           INTEGER PRIMARY KEY,
    execution_id INTEGER NOT NULL REFERENCES retention_executions(id) ON DELETE CASCADE,
    repository   TEXT NOT NULL,
    status       TEXT NOT NULL,
    total        INTEGER NOT NULL,
    retained     INTEGER NOT NULL,
    log          TEXT NOT NULL,
    start_time   INTEGER NOT NULL,
    end_time     INTEGER
);
CREATE INDEX retention_tasks_execution ON retention_tasks(execution_id, id);
