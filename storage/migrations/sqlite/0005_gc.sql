-- Garbage collection: when each blob was last made reachable, the runs
-- and their logs, the one-at-a-time lock, and the schedule.

-- Milliseconds since the epoch when an upload, a mount or a link last made
-- this blob reachable. GC deletes an unreferenced blob only when this is
-- older than its grace window, so a blob pushed for a manifest that is yet
-- to come survives until the manifest arrives.
ALTER TABLE blobs ADD COLUMN touched_ms INTEGER NOT NULL DEFAULT 0;
UPDATE blobs SET touched_ms = created_at * 1000;

-- Harbor's GC history, with what each run did.
CREATE TABLE gc_runs (
    id                INTEGER PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('MANUAL', 'SCHEDULE')),
    dry_run           INTEGER NOT NULL,
    delete_untagged   INTEGER NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('Running', 'Success', 'Error')),
    manifests_deleted INTEGER NOT NULL DEFAULT 0,
    blobs_deleted     INTEGER NOT NULL DEFAULT 0,
    bytes_freed       INTEGER NOT NULL DEFAULT 0,
    log               TEXT NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- At most one GC at a time, across processes: a single row, held under a
-- lease the holder renews while it runs. A holder that died (kill -9) is
-- recognised by its process id on the same boot, or by the lease expiring.
CREATE TABLE gc_lock (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    run_id     INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);

-- The GC schedule (one row). kind is Harbor's schedule type; last_fired_ms
-- is claimed with a compare-and-set so that one process fires each time.
CREATE TABLE gc_schedule (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    kind            TEXT NOT NULL,
    cron            TEXT,
    delete_untagged INTEGER NOT NULL,
    dry_run         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_fired_ms   INTEGER NOT NULL DEFAULT 0
);
