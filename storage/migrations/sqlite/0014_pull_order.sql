-- Artifact pages sorted by pull time (Harbor's `sort=-pull_time`): the
-- top-level manifests of a repository in pull order, read a page at a
-- time as `manifests_top_level` serves push order. Never-pulled rows
-- (NULL) sort low, as SQLite orders NULLs.
CREATE INDEX manifests_top_level_pulled ON manifests(repo_id, pulled_at) WHERE parents = 0;
