-- Background passes that run once per period across every process; see
-- SQLite's 0010_passes.sql.
CREATE TABLE passes (
    name     TEXT COLLATE "C" PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
