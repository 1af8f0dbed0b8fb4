-- The same table as on PostgreSQL (where instances sign their
-- announcements with it; one SQLite process announces nothing).
CREATE TABLE cluster_secrets (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);
INSERT INTO cluster_secrets (name, secret) VALUES ('changes', lower(hex(randomblob(32))));
