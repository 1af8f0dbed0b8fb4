-- What the management API's listings need to stay fast in a repository of
-- 100,000 artifacts (issue 14): each page is read from an index, in order,
-- without a look-up per manifest of the repository.

-- How many indexes of its repository list a manifest. A top-level
-- artifact (storage/src/artifacts.rs) is one with none. The triggers keep
-- it exact whatever code writes the rows (pushes, deletions and their
-- cascades, garbage collection, `berth migrate`), in the same transaction:
-- a new manifest counts the indexes already listing it (the value an
-- INSERT supplies is ignored), and each index entry (is_manifest = 1)
-- adds one to its child while it exists. Writers of a repository's
-- manifests and references take turns (locks.rs), so no two of them count
-- past each other.
ALTER TABLE manifests ADD COLUMN parents INTEGER NOT NULL DEFAULT 0;
UPDATE manifests SET parents = (SELECT count(*) FROM manifest_refs c
    WHERE c.repo_id = manifests.repo_id AND c.child_digest = manifests.digest AND c.is_manifest = 1);

CREATE TRIGGER manifests_parents_insert AFTER INSERT ON manifests
BEGIN
    UPDATE manifests SET parents = (SELECT count(*) FROM manifest_refs c
        WHERE c.repo_id = new.repo_id AND c.child_digest = new.digest AND c.is_manifest = 1)
    WHERE repo_id = new.repo_id AND digest = new.digest;
END;

CREATE TRIGGER manifest_refs_parents_insert AFTER INSERT ON manifest_refs WHEN new.is_manifest = 1
BEGIN
    UPDATE manifests SET parents = parents + 1
    WHERE repo_id = new.repo_id AND digest = new.child_digest;
END;

CREATE TRIGGER manifest_refs_parents_delete AFTER DELETE ON manifest_refs WHEN old.is_manifest = 1
BEGIN
    UPDATE manifests SET parents = parents - 1
    WHERE repo_id = old.repo_id AND digest = old.child_digest;
END;

CREATE TRIGGER manifest_refs_parents_update AFTER UPDATE ON manifest_refs
BEGIN
    UPDATE manifests SET parents = parents - 1
    WHERE old.is_manifest = 1 AND repo_id = old.repo_id AND digest = old.child_digest;
    UPDATE manifests SET parents = parents + 1
    WHERE new.is_manifest = 1 AND repo_id = new.repo_id AND digest = new.child_digest;
END;

-- A repository's top-level artifacts, newest push first (SQLite's rowid,
-- the tie-break, is every index's implicit last column): a page and the
-- total are read from this index alone. With the other manifests' index,
-- a repository's last push. (Both are partial: an index on all manifests
-- by (repo_id, created_at) would be as good a match for the planner, which
-- has no statistics, and it would read each manifest to test `parents`.)
CREATE INDEX manifests_top_level ON manifests(repo_id, created_at) WHERE parents = 0;
CREATE INDEX manifests_below ON manifests(repo_id, created_at) WHERE parents > 0;
-- The tags of a page's manifests, whether a manifest is tagged, and which
-- manifests have a tag matching a filter (read from the index alone, with
-- the name; PostgreSQL has had tags_manifest since 0001).
CREATE INDEX tags_manifest ON tags(repo_id, manifest_digest, name);
-- A repository's last tag change.
CREATE INDEX tags_updated ON tags(repo_id, updated_at);
