-- Background passes that run once per period across every process
-- sharing the database (proxy-cache eviction, the upload purge): the
-- process that claims a pass's row for the period runs it.
CREATE TABLE passes (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms INTEGER NOT NULL
);
