-- A secret every berth instance reads and no other login can (the table
-- belongs to berth's role): it signs what instances announce to each
-- other on the `berth_changes` channel, on which any login to the
-- database server may LISTEN and NOTIFY (see `changes`). gen_random_uuid
-- draws from the server's strong random source.
CREATE TABLE cluster_secrets (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);
INSERT INTO cluster_secrets (name, secret)
VALUES ('changes', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
