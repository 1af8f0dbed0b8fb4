-- Artifact pages sorted by pull time (Harbor's `sort=-pull_time`): the
-- top-level manifests of a repository in pull order, read a page at a
-- time as `manifests_top_level` serves push order. Latest pull first
-- with never-pulled rows last is the index's order; the other way is the
-- same index read backwards.
CREATE INDEX manifests_top_level_pulled ON manifests(repo_id, pulled_at DESC NULLS LAST, rowid DESC) WHERE parents = 0;
