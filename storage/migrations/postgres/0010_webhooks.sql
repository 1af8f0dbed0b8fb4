-- Webhooks (Harbor's /projects/{p}/webhook): a project's policies, one
-- execution per event a policy was notified of, and one task per target
-- of that policy. The tasks are the delivery queue: each is Pending until
-- sent, retried with backoff, and claimed with a lease so that one process
-- of many sends it and another takes over when that one dies.

CREATE TABLE webhook_policies (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- JSON: [{"address", "auth_header", "skip_cert_verify", "payload_format"}]
    targets     TEXT NOT NULL,
    -- JSON: ["PUSH_ARTIFACT", ...]
    event_types TEXT NOT NULL,
    creator     TEXT NOT NULL,
    enabled     BIGINT NOT NULL DEFAULT 1,
    -- When a delivery of this policy was last claimed (unix seconds):
    -- the policy waiting longest goes next.
    last_sent   BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE webhook_executions (
    id          BIGSERIAL PRIMARY KEY,
    policy_id   BIGINT NOT NULL REFERENCES webhook_policies(id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    -- Running until every task ended; then Success, or Error if one failed.
    status      TEXT NOT NULL,
    start_time  BIGINT NOT NULL,
    end_time    BIGINT
);
CREATE INDEX webhook_executions_policy ON webhook_executions(policy_id, id);

CREATE TABLE webhook_tasks (
    id           BIGSERIAL PRIMARY KEY,
    execution_id BIGINT NOT NULL REFERENCES webhook_executions(id) ON DELETE CASCADE,
    -- The execution's policy (claims are spread across policies by it).
    policy_id    BIGINT NOT NULL,
    -- The target's address when the event happened; its auth header is
    -- read from the policy when sent (never copied here).
    address      TEXT NOT NULL,
    -- The address's scheme, host and port: one delivery at a time goes to
    -- each receiver, however its paths differ.
    receiver     TEXT NOT NULL,
    payload_format TEXT NOT NULL,
    payload      TEXT NOT NULL,
    -- Pending (waiting for its next attempt), Running (claimed), Success, Error
    status       TEXT NOT NULL,
    run_count    BIGINT NOT NULL DEFAULT 0,
    -- Unix seconds: not sent before.
    next_at      BIGINT NOT NULL,
    -- Unix seconds: a Running task's claim ends; then any process may take it.
    lease_until  BIGINT,
    -- One line per attempt.
    log          TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    start_time   BIGINT,
    end_time     BIGINT
);
CREATE INDEX webhook_tasks_execution ON webhook_tasks(execution_id, id);
CREATE INDEX webhook_tasks_pending ON webhook_tasks(status, next_at);
CREATE INDEX webhook_tasks_leased ON webhook_tasks(status, lease_until);
CREATE INDEX webhook_tasks_receiver ON webhook_tasks(receiver) WHERE status = 'Running';
CREATE INDEX webhook_tasks_policy ON webhook_tasks(policy_id, status);
