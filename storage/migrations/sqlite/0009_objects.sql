-- Blobs on an object store (`[storage] driver = "s3"`).
-- `location`: the key (under `blobs/`) a blob pushed or fetched there was
-- stored at; empty means its content address.
ALTER TABLE blobs ADD COLUMN location TEXT;
-- An upload's progress lives here, not in a file, so that its chunks may
-- land on any instance: its length (moved by compare-and-swap), its parts,
-- pieces and running hash (`object_state`, JSON), and when it last moved.
ALTER TABLE uploads ADD COLUMN len INTEGER NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN object_state TEXT;
ALTER TABLE uploads ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
-- Set when the final PUT claims the upload (its `len` becomes -1): the
-- key its blob is being assembled at, which GC's orphan sweep must leave
-- alone until the blob's row names it.
ALTER TABLE uploads ADD COLUMN location TEXT;
-- The request writing the upload now (a random token) and until when its
-- lease holds unless renewed: a second request at the same offset, on
-- another instance, is refused rather than let overwrite a part.
ALTER TABLE uploads ADD COLUMN writer TEXT;
ALTER TABLE uploads ADD COLUMN writer_until INTEGER NOT NULL DEFAULT 0;
