-- When `berth migrate` last replaced this database's metadata with an
-- installation's: a rerun is refused once the database was used after it.
CREATE TABLE migrated_from (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    finished_ms BIGINT NOT NULL
);
