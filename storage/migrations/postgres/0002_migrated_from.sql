-- What `berth migrate` left in this database when it last replaced its
-- metadata with an installation's: a rerun is refused once the database
-- has changed since (see storage/src/migrate.rs, `fingerprint`).
CREATE TABLE migrated_from (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    finished_ms BIGINT NOT NULL,
    fingerprint TEXT NOT NULL
);
