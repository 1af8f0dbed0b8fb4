-- Which key seals the stored secrets (storage/src/secrets): one row, its
-- id (a hash of the key, never the key), checked at every start.
CREATE TABLE secret_key (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    key_id TEXT NOT NULL
);
