-- Blobs on an object store (`[storage] driver = "s3"`); see SQLite's
-- 0009_objects.sql.
ALTER TABLE blobs ADD COLUMN location TEXT COLLATE "C";
ALTER TABLE uploads ADD COLUMN len BIGINT NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN object_state TEXT;
ALTER TABLE uploads ADD COLUMN touched_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN location TEXT COLLATE "C";
ALTER TABLE uploads ADD COLUMN writer TEXT COLLATE "C";
ALTER TABLE uploads ADD COLUMN writer_until BIGINT NOT NULL DEFAULT 0;
