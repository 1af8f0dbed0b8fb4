-- One storage quota per project (Harbor's quota, referenced by project).
-- hard_storage is in bytes; -1 means unlimited. used_storage is the
-- project's usage as storage/src/quota.rs defines it: the distinct digests
-- of the blobs linked into its repositories and of their manifests, each
-- counted once. The triggers below keep it exact on every insert and
-- delete of those rows, whatever code runs them (pushes, deletes, garbage
-- collection), in the same transaction.
CREATE TABLE quotas (
    id           INTEGER PRIMARY KEY,
    project_id   INTEGER NOT NULL UNIQUE REFERENCES projects(id) ON DELETE CASCADE,
    hard_storage INTEGER NOT NULL DEFAULT -1,
    used_storage INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Is a digest a manifest of this project too? (blob and manifest digests
-- are deduplicated across both tables)
CREATE INDEX manifests_digest ON manifests(digest);

INSERT INTO quotas (project_id, hard_storage, used_storage, created_at, updated_at)
SELECT p.id, -1, (SELECT coalesce(sum(size), 0) FROM (SELECT b.digest, b.size FROM repo_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repo_id IN (SELECT id FROM repositories WHERE name = p.name OR (name >= p.name || '/' AND name < p.name || '0')) UNION SELECT m.digest, m.size FROM manifests m WHERE m.repo_id IN (SELECT id FROM repositories WHERE name = p.name OR (name >= p.name || '/' AND name < p.name || '0')))), p.created_at, p.created_at FROM projects p WHERE true;

-- Every project has a quota row, however it was created (with the usage
-- of repositories that existed before it); the project API then sets the
-- configured default limit in the same transaction.
CREATE TRIGGER projects_quota AFTER INSERT ON projects
BEGIN
    INSERT INTO quotas (project_id, hard_storage, used_storage, created_at, updated_at)
    VALUES (new.id, -1, (SELECT coalesce(sum(size), 0) FROM (SELECT b.digest, b.size FROM repo_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repo_id IN (SELECT id FROM repositories WHERE name = new.name OR (name >= new.name || '/' AND name < new.name || '0')) UNION SELECT m.digest, m.size FROM manifests m WHERE m.repo_id IN (SELECT id FROM repositories WHERE name = new.name OR (name >= new.name || '/' AND name < new.name || '0')))), new.created_at, new.created_at);
END;

-- A blob link adds its size when no other repository of the project links
-- it and no manifest of the project has its digest; removing the last
-- holder subtracts it.
CREATE TRIGGER repo_blobs_usage_insert AFTER INSERT ON repo_blobs
BEGIN
    UPDATE quotas SET used_storage = used_storage + (SELECT size FROM blobs WHERE digest = new.digest)
    WHERE project_id = (SELECT p.id FROM repositories r JOIN projects p ON p.name = CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END WHERE r.id = new.repo_id)
      AND NOT EXISTS (SELECT 1 FROM repo_blobs rb JOIN repositories r2 ON r2.id = rb.repo_id
            WHERE rb.digest = new.digest AND rb.repo_id <> new.repo_id
              AND CASE WHEN instr(r2.name, '/') > 0 THEN substr(r2.name, 1, instr(r2.name, '/') - 1) ELSE r2.name END = (SELECT CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END FROM repositories WHERE id = new.repo_id))
      AND NOT EXISTS (SELECT 1 FROM manifests m JOIN repositories r2 ON r2.id = m.repo_id
            WHERE m.digest = new.digest
              AND CASE WHEN instr(r2.name, '/') > 0 THEN substr(r2.name, 1, instr(r2.name, '/') - 1) ELSE r2.name END = (SELECT CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END FROM repositories WHERE id = new.repo_id));
END;

CREATE TRIGGER repo_blobs_usage_delete AFTER DELETE ON repo_blobs
BEGIN
    UPDATE quotas SET used_storage = used_storage - (SELECT size FROM blobs WHERE digest = old.digest)
    WHERE project_id = (SELECT p.id FROM repositories r JOIN projects p ON p.name = CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END WHERE r.id = old.repo_id)
      AND NOT EXISTS (SELECT 1 FROM repo_blobs rb JOIN repositories r2 ON r2.id = rb.repo_id
            WHERE rb.digest = old.digest
              AND CASE WHEN instr(r2.name, '/') > 0 THEN substr(r2.name, 1, instr(r2.name, '/') - 1) ELSE r2.name END = (SELECT CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END FROM repositories WHERE id = old.repo_id))
      AND NOT EXISTS (SELECT 1 FROM manifests m JOIN repositories r2 ON r2.id = m.repo_id
            WHERE m.digest = old.digest
              AND CASE WHEN instr(r2.name, '/') > 0 THEN substr(r2.name, 1, instr(r2.name, '/') - 1) ELSE r2.name END = (SELECT CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END FROM repositories WHERE id = old.repo_id));
END;

CREATE TRIGGER manifests_usage_insert AFTER INSERT ON manifests
BEGIN
    UPDATE quotas SET used_storage = used_storage + new.size
    WHERE project_id = (SELECT p.id FROM repositories r JOIN projects p ON p.name = CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END WHERE r.id = new.repo_id)
      AND NOT EXISTS (SELECT 1 FROM manifests m JOIN repositories r2 ON r2.id = m.repo_id
            WHERE m.digest = new.digest AND m.repo_id <> new.repo_id
              AND CASE WHEN instr(r2.name, '/') > 0 THEN substr(r2.name, 1, instr(r2.name, '/') - 1) ELSE r2.name END = (SELECT CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END FROM repositories WHERE id = new.repo_id))
      AND NOT EXISTS (SELECT 1 FROM repo_blobs rb JOIN repositories r2 ON r2.id = rb.repo_id
            WHERE rb.digest = new.digest
              AND CASE WHEN instr(r2.name, '/') > 0 THEN substr(r2.name, 1, instr(r2.name, '/') - 1) ELSE r2.name END = (SELECT CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END FROM repositories WHERE id = new.repo_id));
END;

CREATE TRIGGER manifests_usage_delete AFTER DELETE ON manifests
BEGIN
    UPDATE quotas SET used_storage = used_storage - old.size
    WHERE project_id = (SELECT p.id FROM repositories r JOIN projects p ON p.name = CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END WHERE r.id = old.repo_id)
      AND NOT EXISTS (SELECT 1 FROM manifests m JOIN repositories r2 ON r2.id = m.repo_id
            WHERE m.digest = old.digest
              AND CASE WHEN instr(r2.name, '/') > 0 THEN substr(r2.name, 1, instr(r2.name, '/') - 1) ELSE r2.name END = (SELECT CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END FROM repositories WHERE id = old.repo_id))
      AND NOT EXISTS (SELECT 1 FROM repo_blobs rb JOIN repositories r2 ON r2.id = rb.repo_id
            WHERE rb.digest = old.digest
              AND CASE WHEN instr(r2.name, '/') > 0 THEN substr(r2.name, 1, instr(r2.name, '/') - 1) ELSE r2.name END = (SELECT CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END FROM repositories WHERE id = old.repo_id));
END;

-- The triggers above find a row's project through its repository: a
-- repository's rows go before it does (a cascade would run them after).
CREATE TRIGGER repositories_release BEFORE DELETE ON repositories
BEGIN
    DELETE FROM tags WHERE repo_id = old.id;
    DELETE FROM manifests WHERE repo_id = old.id;
    DELETE FROM repo_blobs WHERE repo_id = old.id;
END;

-- Tag immutability rules (Harbor's ImmutableRule). Selectors are kept as
-- the JSON the API received, validated before they are stored.
CREATE TABLE immutable_rules (
    id              INTEGER PRIMARY KEY,
    project_id      INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    priority        INTEGER NOT NULL DEFAULT 0,
    disabled        INTEGER NOT NULL DEFAULT 0,
    tag_selectors   TEXT NOT NULL,
    scope_selectors TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX immutable_rules_project ON immutable_rules(project_id);

-- Tag retention: at most one policy per project (Harbor's retention_id
-- project metadata). rules and trig hold the validated API JSON.
CREATE TABLE retention_policies (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL UNIQUE REFERENCES projects(id) ON DELETE CASCADE,
    algorithm   TEXT NOT NULL DEFAULT 'or',
    rules       TEXT NOT NULL,
    trig        TEXT NOT NULL,
    -- The cron second a schedule last fired for, claimed with a
    -- conditional UPDATE so that several berth processes fire it once.
    last_fired  INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE retention_executions (
    id          INTEGER PRIMARY KEY,
    policy_id   INTEGER NOT NULL REFERENCES retention_policies(id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    trig        TEXT NOT NULL,
    dry_run     INTEGER NOT NULL,
    start_time  INTEGER NOT NULL,
    end_time    INTEGER
);
CREATE INDEX retention_executions_policy ON retention_executions(policy_id, id);

-- One task per repository an execution looked at; log lists each
-- artifact's fate, one line each.
CREATE TABLE retention_tasks (
    id           INTEGER PRIMARY KEY,
    execution_id INTEGER NOT NULL REFERENCES retention_executions(id) ON DELETE CASCADE,
    repository   TEXT NOT NULL,
    status       TEXT NOT NULL,
    total        INTEGER NOT NULL,
    retained     INTEGER NOT NULL,
    log          TEXT NOT NULL,
    start_time   INTEGER NOT NULL,
    end_time     INTEGER
);
CREATE INDEX retention_tasks_execution ON retention_tasks(execution_id, id);
