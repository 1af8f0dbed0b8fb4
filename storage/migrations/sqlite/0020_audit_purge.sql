-- Purges of the audit log (Harbor's /system/purgeaudit): each run with its
-- parameters (Harbor's JSON), its count and its log, and the one schedule.
-- A run beats a heartbeat (updated_at) with each batch; a stop is asked
-- through stop_requested and honoured between batches.
CREATE TABLE audit_purges (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL CHECK (kind IN ('MANUAL', 'SCHEDULE')),
    parameters     TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('Running', 'Success', 'Error', 'Stopped')),
    deleted        INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    log            TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- One row; last_fired_ms is claimed with a compare-and-set so that one
-- process fires each time.
CREATE TABLE audit_purge_schedule (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    kind          TEXT NOT NULL,
    cron          TEXT,
    parameters    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_fired_ms INTEGER NOT NULL DEFAULT 0
);
