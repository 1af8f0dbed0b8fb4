-- Labels (Harbor's /labels): global ones (no project), which every
-- project may put on its artifacts, and a project's own. A name is unique
-- within its scope, compared byte by byte.
CREATE TABLE labels (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    color       TEXT NOT NULL DEFAULT '',
    project_id  BIGINT REFERENCES projects(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX labels_global_name ON labels(name) WHERE project_id IS NULL;
CREATE UNIQUE INDEX labels_project_name ON labels(project_id, name) WHERE project_id IS NOT NULL;

-- The labels on each artifact. Deleting the artifact (whatever deletes
-- it: the API, retention, GC, a repository or project deletion) or the
-- label deletes the row.
CREATE TABLE artifact_labels (
    repo_id         BIGINT NOT NULL,
    manifest_digest TEXT NOT NULL,
    label_id        BIGINT NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (repo_id, manifest_digest, label_id),
    FOREIGN KEY (repo_id, manifest_digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
-- A listing filtered by label reads the label's artifacts from here.
CREATE INDEX artifact_labels_label ON artifact_labels(label_id, repo_id, manifest_digest);
