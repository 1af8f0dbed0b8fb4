-- What the management API's listings need to stay fast in a repository of
-- 100,000 artifacts; see SQLite's 0012_listing.sql. As with the quota
-- triggers, a new manifest's count is set BEFORE the row is written; the
-- index entries' changes are counted AFTER each row (an increment does not
-- depend on the other rows of its statement).
ALTER TABLE manifests ADD COLUMN parents BIGINT NOT NULL DEFAULT 0;
UPDATE manifests m SET parents = (SELECT count(*) FROM manifest_refs c
    WHERE c.repo_id = m.repo_id AND c.child_digest = m.digest AND c.is_manifest = 1);

CREATE FUNCTION manifests_parents_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.parents := (SELECT count(*) FROM manifest_refs c
        WHERE c.repo_id = NEW.repo_id AND c.child_digest = NEW.digest AND c.is_manifest = 1);
    RETURN NEW;
END $$;
CREATE TRIGGER manifests_parents_insert BEFORE INSERT ON manifests
    FOR EACH ROW EXECUTE FUNCTION manifests_parents_insert();

CREATE FUNCTION manifest_refs_parents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.is_manifest = 1 THEN
        UPDATE manifests SET parents = parents - 1
        WHERE repo_id = OLD.repo_id AND digest = OLD.child_digest;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.is_manifest = 1 THEN
        UPDATE manifests SET parents = parents + 1
        WHERE repo_id = NEW.repo_id AND digest = NEW.child_digest;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER manifest_refs_parents AFTER INSERT OR UPDATE OR DELETE ON manifest_refs
    FOR EACH ROW EXECUTE FUNCTION manifest_refs_parents();

-- A repository's top-level artifacts, newest push first; a page's row ids
-- and the total are read from this index alone. With the other manifests'
-- index, a repository's last push; and its last tag change.
CREATE INDEX manifests_top_level ON manifests(repo_id, created_at, rowid) WHERE parents = 0;
CREATE INDEX manifests_below ON manifests(repo_id, created_at) WHERE parents > 0;
CREATE INDEX tags_updated ON tags(repo_id, updated_at);

-- json_each() lists a page's digests (100 at most) or a manifest's
-- references: without an estimate the planner assumes 1,000 rows, and 10
-- times that for each level of a recursive query over them, then prefers
-- to hash a repository's references to looking up each one.
ALTER FUNCTION json_each(text) ROWS 10;
