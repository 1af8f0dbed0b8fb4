-- Who started an upload session, so that open sessions can be capped per
-- user (`server.max_uploads_per_user`). Sessions from before this column
-- have no owner and count against nobody.
ALTER TABLE uploads ADD COLUMN owner TEXT;
CREATE INDEX uploads_owner ON uploads(owner);
