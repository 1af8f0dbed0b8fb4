-- berth's schema on PostgreSQL: the same tables, columns and meaning as
-- the SQLite migrations (../sqlite) reach after 0008, so that one set of
-- statements serves both. Where the two differ, and why:
--
-- - Integers are BIGINT and yes/no flags are integers (0/1), as SQLite
--   stores them, so statements bind and compare them the same way.
-- - Names are compared and ordered byte by byte (COLLATE "C"), as SQLite
--   does: repository ranges (`name >= 'team/' AND name < 'team0'`) and
--   every listing's order depend on it, whatever the server's locale.
--   (Digests are lowercase ASCII and keep the default: a recursive query
--   mixing them with bound text needs one collation.)
-- - `manifests` and `tags` have an explicit `rowid` (SQLite's implicit
--   one): the management API shows it as the artifact and tag id.
-- - The quota triggers fire BEFORE each row changes, where SQLite's fire
--   AFTER: PostgreSQL runs AFTER row triggers once the whole statement is
--   done, so two rows of one statement would each see the other and the
--   sum would drift. BEFORE, each sees the rows processed before it.
-- - A few SQLite functions the shared statements use are defined below.

-- SQLite's instr(): the 1-based position of a substring, 0 when absent.
CREATE FUNCTION instr(haystack text, needle text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT strpos(haystack, needle) $$;

-- SQLite's json_each() over a JSON array of strings or numbers, as text.
-- (PostgreSQL's own json_each takes json and walks an object's keys; this
-- one takes text, which is what the statements bind.)
CREATE FUNCTION json_each(list text) RETURNS TABLE (value text)
    LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT json_array_elements_text(CAST(list AS json)) $$;

-- SQLite's json_extract() of a scalar at a path such as '$.kind', as text;
-- NULL when the document is not JSON or the path is absent.
CREATE FUNCTION json_extract(doc text, path text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    RETURN jsonb_path_query_first(CAST(doc AS jsonb), CAST(path AS jsonpath)) #>> '{}';
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- SQLite's COLLATE NOCASE: ASCII letters folded, nothing else (lower()
-- would follow the server's locale).
CREATE FUNCTION ascii_lower(s text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT translate(s, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
$$;

-- The project a repository belongs to: its first path segment.
CREATE FUNCTION project_of(repo text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT split_part(repo, '/', 1) $$;

CREATE TABLE repositories (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    pull_count BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    touched_ms BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE repo_blobs (
    repo_id    BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest     TEXT NOT NULL REFERENCES blobs(digest),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, digest)
);
CREATE INDEX repo_blobs_digest ON repo_blobs(digest);

CREATE TABLE manifests (
    rowid         BIGSERIAL NOT NULL UNIQUE,
    repo_id       BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    content       BYTEA NOT NULL,
    size          BIGINT NOT NULL,
    artifact_type TEXT,
    subject       TEXT,
    annotations   TEXT,
    created_at    BIGINT NOT NULL,
    pulled_at     BIGINT,
    PRIMARY KEY (repo_id, digest)
);
CREATE INDEX manifests_subject ON manifests(repo_id, subject);
CREATE INDEX manifests_digest ON manifests(digest);

CREATE TABLE manifest_refs (
    repo_id         BIGINT NOT NULL,
    manifest_digest TEXT NOT NULL,
    child_digest    TEXT NOT NULL,
    is_manifest     BIGINT NOT NULL,
    PRIMARY KEY (repo_id, manifest_digest, child_digest),
    FOREIGN KEY (repo_id, manifest_digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_refs_child ON manifest_refs(child_digest);

CREATE TABLE tags (
    rowid           BIGSERIAL NOT NULL UNIQUE,
    repo_id         BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name            TEXT COLLATE "C" NOT NULL,
    manifest_digest TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (repo_id, name),
    FOREIGN KEY (repo_id, manifest_digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX tags_manifest ON tags(repo_id, manifest_digest);

CREATE TABLE uploads (
    id         TEXT COLLATE "C" PRIMARY KEY,
    repo_id    BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    owner      TEXT COLLATE "C"
);
CREATE INDEX uploads_owner ON uploads(owner);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT,
    email         TEXT,
    admin         BIGINT NOT NULL DEFAULT 0,
    disabled      BIGINT NOT NULL DEFAULT 0,
    source        TEXT NOT NULL,
    ldap_dn       TEXT,
    ldap_groups   TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    realname      TEXT,
    comment       TEXT
);
CREATE INDEX users_username_nocase ON users(ascii_lower(username));

CREATE TABLE registries (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT COLLATE "C" NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    url             TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    insecure        BIGINT NOT NULL DEFAULT 0,
    credential_type TEXT,
    access_key      TEXT,
    access_secret   TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- Ids are given by the application (projects.rs, NEXT_PROJECT_ID) under
-- the write lock, never twice (id_high_water).
CREATE TABLE projects (
    id          BIGINT PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    public      BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    owner_id    BIGINT,
    updated_at  BIGINT NOT NULL DEFAULT 0,
    registry_id BIGINT REFERENCES registries(id),
    proxy_mode  TEXT,
    created_ms  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE user_groups (
    id            BIGSERIAL PRIMARY KEY,
    group_name    TEXT NOT NULL,
    group_type    BIGINT NOT NULL DEFAULT 1,
    ldap_group_dn TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE project_members (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    entity_type TEXT NOT NULL CHECK (entity_type IN ('u', 'g')),
    entity_id   BIGINT NOT NULL,
    role        BIGINT NOT NULL CHECK (role BETWEEN 1 AND 5),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (project_id, entity_type, entity_id)
);
CREATE INDEX project_members_entity ON project_members(entity_type, entity_id);

CREATE TABLE robots (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('system', 'project')),
    project_id  BIGINT REFERENCES projects(id) ON DELETE CASCADE,
    duration    BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    disabled    BIGINT NOT NULL DEFAULT 0,
    permissions TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE audit_logs (
    id            BIGSERIAL PRIMARY KEY,
    op_time       BIGINT NOT NULL,
    username      TEXT COLLATE "C" NOT NULL,
    operation     TEXT COLLATE "C" NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    resource      TEXT COLLATE "C" NOT NULL,
    project       TEXT COLLATE "C",
    success       BIGINT NOT NULL,
    client_ip     TEXT
);
CREATE INDEX audit_logs_time ON audit_logs(op_time);
CREATE INDEX audit_logs_project ON audit_logs(project, op_time);

CREATE TABLE gc_runs (
    id                BIGSERIAL PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('MANUAL', 'SCHEDULE')),
    dry_run           BIGINT NOT NULL,
    delete_untagged   BIGINT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('Running', 'Success', 'Error')),
    manifests_deleted BIGINT NOT NULL DEFAULT 0,
    blobs_deleted     BIGINT NOT NULL DEFAULT 0,
    bytes_freed       BIGINT NOT NULL DEFAULT 0,
    log               TEXT NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE gc_lock (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    run_id     BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE gc_schedule (
    id              BIGINT PRIMARY KEY CHECK (id = 1),
    kind            TEXT NOT NULL,
    cron            TEXT,
    delete_untagged BIGINT NOT NULL,
    dry_run         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_fired_ms   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE quotas (
    id           BIGSERIAL PRIMARY KEY,
    project_id   BIGINT NOT NULL UNIQUE REFERENCES projects(id) ON DELETE CASCADE,
    hard_storage BIGINT NOT NULL DEFAULT -1,
    used_storage BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE immutable_rules (
    id              BIGSERIAL PRIMARY KEY,
    project_id      BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    priority        BIGINT NOT NULL DEFAULT 0,
    disabled        BIGINT NOT NULL DEFAULT 0,
    tag_selectors   TEXT NOT NULL,
    scope_selectors TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX immutable_rules_project ON immutable_rules(project_id);

CREATE TABLE retention_policies (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL UNIQUE REFERENCES projects(id) ON DELETE CASCADE,
    algorithm   TEXT NOT NULL DEFAULT 'or',
    rules       TEXT NOT NULL,
    trig        TEXT NOT NULL,
    last_fired  BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE retention_executions (
    id          BIGSERIAL PRIMARY KEY,
    policy_id   BIGINT NOT NULL REFERENCES retention_policies(id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    trig        TEXT NOT NULL,
    dry_run     BIGINT NOT NULL,
    start_time  BIGINT NOT NULL,
    end_time    BIGINT
);
CREATE INDEX retention_executions_policy ON retention_executions(policy_id, id);

CREATE TABLE retention_tasks (
    id           BIGSERIAL PRIMARY KEY,
    execution_id BIGINT NOT NULL REFERENCES retention_executions(id) ON DELETE CASCADE,
    repository   TEXT COLLATE "C" NOT NULL,
    status       TEXT NOT NULL,
    total        BIGINT NOT NULL,
    retained     BIGINT NOT NULL,
    log          TEXT NOT NULL,
    start_time   BIGINT NOT NULL,
    end_time     BIGINT
);
CREATE INDEX retention_tasks_execution ON retention_tasks(execution_id, id);

-- Project ids are never given out twice (see the SQLite migration 0007).
CREATE TABLE id_high_water (
    name TEXT PRIMARY KEY,
    last BIGINT NOT NULL
);
INSERT INTO id_high_water (name, last) VALUES ('projects', 0);

CREATE FUNCTION projects_high_water() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE id_high_water SET last = GREATEST(last, OLD.id) WHERE name = 'projects';
    RETURN OLD;
END $$;
CREATE TRIGGER projects_high_water AFTER DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION projects_high_water();

-- Quotas: see the SQLite migration 0006 for what usage is. Every project
-- has a quota row, with the usage of repositories that existed before it.
CREATE FUNCTION project_usage(project text) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM (
        SELECT b.digest, b.size FROM repo_blobs rb JOIN blobs b ON b.digest = rb.digest
          JOIN repositories r ON r.id = rb.repo_id WHERE project_of(r.name) = project
        UNION
        SELECT m.digest, m.size FROM manifests m
          JOIN repositories r ON r.id = m.repo_id WHERE project_of(r.name) = project) u
$$;

CREATE FUNCTION projects_quota() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO quotas (project_id, hard_storage, used_storage, created_at, updated_at)
    VALUES (NEW.id, -1, project_usage(NEW.name), NEW.created_at, NEW.created_at);
    RETURN NEW;
END $$;
CREATE TRIGGER projects_quota AFTER INSERT ON projects
    FOR EACH ROW EXECUTE FUNCTION projects_quota();

-- Whether any repository of `project` other than the row `(skip_repo,
-- digest)` holds `digest`, as a blob link or as a manifest. Rows already
-- processed by the running statement are seen (BEFORE triggers).
CREATE FUNCTION project_holds(project text, digest_ text, skip_repo bigint, skip_table text)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM repo_blobs rb JOIN repositories r ON r.id = rb.repo_id
                   WHERE rb.digest = digest_ AND project_of(r.name) = project
                     AND NOT (skip_table = 'repo_blobs' AND rb.repo_id = skip_repo))
        OR EXISTS (SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
                   WHERE m.digest = digest_ AND project_of(r.name) = project
                     AND NOT (skip_table = 'manifests' AND m.repo_id = skip_repo))
$$;

-- Adds or subtracts a row's size when it is the first or last holder of
-- its digest in its project. On insert the row is not there yet, and an
-- insert that will conflict finds its existing twin, so it adds nothing.
CREATE FUNCTION usage_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    project text;
    row_size bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT project_of(name) INTO project FROM repositories WHERE id = NEW.repo_id;
        IF NOT project_holds(project, NEW.digest, NULL, '') THEN
            IF TG_TABLE_NAME = 'repo_blobs' THEN
                SELECT size INTO row_size FROM blobs WHERE digest = NEW.digest;
            ELSE
                row_size := NEW.size;
            END IF;
            UPDATE quotas SET used_storage = used_storage + row_size
            WHERE project_id = (SELECT id FROM projects WHERE name = project);
        END IF;
        RETURN NEW;
    ELSE
        SELECT project_of(name) INTO project FROM repositories WHERE id = OLD.repo_id;
        IF NOT project_holds(project, OLD.digest, OLD.repo_id, TG_TABLE_NAME) THEN
            IF TG_TABLE_NAME = 'repo_blobs' THEN
                SELECT size INTO row_size FROM blobs WHERE digest = OLD.digest;
            ELSE
                row_size := OLD.size;
            END IF;
            UPDATE quotas SET used_storage = used_storage - row_size
            WHERE project_id = (SELECT id FROM projects WHERE name = project);
        END IF;
        RETURN OLD;
    END IF;
END $$;
CREATE TRIGGER repo_blobs_usage BEFORE INSERT OR DELETE ON repo_blobs
    FOR EACH ROW EXECUTE FUNCTION usage_change();
CREATE TRIGGER manifests_usage BEFORE INSERT OR DELETE ON manifests
    FOR EACH ROW EXECUTE FUNCTION usage_change();

-- The triggers above find a row's project through its repository: a
-- repository's rows go before it does.
CREATE FUNCTION repositories_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tags WHERE repo_id = OLD.id;
    DELETE FROM manifests WHERE repo_id = OLD.id;
    DELETE FROM repo_blobs WHERE repo_id = OLD.id;
    RETURN OLD;
END $$;
CREATE TRIGGER repositories_release BEFORE DELETE ON repositories
    FOR EACH ROW EXECUTE FUNCTION repositories_release();
