-- Projects with owners and members, robot accounts, the audit log, and
-- the pull statistics the management API reports.

ALTER TABLE users ADD COLUMN realname TEXT;
ALTER TABLE users ADD COLUMN comment TEXT;

ALTER TABLE projects ADD COLUMN owner_id INTEGER;
ALTER TABLE projects ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE projects SET updated_at = created_at;
UPDATE projects SET owner_id = (SELECT id FROM users WHERE username = 'admin');

-- Repositories pushed before projects were enforced keep working: their
-- projects are recorded as private projects owned by the administrator.
INSERT INTO projects (name, public, created_at, updated_at, owner_id)
SELECT DISTINCT
       CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END,
       0,
       CAST(strftime('%s', 'now') AS INTEGER),
       CAST(strftime('%s', 'now') AS INTEGER),
       (SELECT id FROM users WHERE username = 'admin')
FROM repositories WHERE true
ON CONFLICT (name) DO NOTHING;

-- LDAP groups that are project members, by DN (Harbor's user_group with
-- group_type 1).
CREATE TABLE user_groups (
    id            INTEGER PRIMARY KEY,
    group_name    TEXT NOT NULL,
    group_type    INTEGER NOT NULL DEFAULT 1,
    ldap_group_dn TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL
);

-- A member is a user ('u', entity_id = users.id) or a group ('g',
-- entity_id = user_groups.id). role is Harbor's role id.
CREATE TABLE project_members (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    entity_type TEXT NOT NULL CHECK (entity_type IN ('u', 'g')),
    entity_id   INTEGER NOT NULL,
    role        INTEGER NOT NULL CHECK (role BETWEEN 1 AND 5),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (project_id, entity_type, entity_id)
);
CREATE INDEX project_members_entity ON project_members(entity_type, entity_id);

-- Robot accounts. The secret is stored as a SHA-256 hash: it is 32
-- random characters, so a slow hash adds nothing but latency.
CREATE TABLE robots (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('system', 'project')),
    project_id  INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    duration    INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0,
    permissions TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Who did what, when, to what, and whether it worked. Written in batches
-- off the request path.
CREATE TABLE audit_logs (
    id            INTEGER PRIMARY KEY,
    op_time       INTEGER NOT NULL,
    username      TEXT NOT NULL,
    operation     TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource      TEXT NOT NULL,
    project       TEXT,
    success       INTEGER NOT NULL,
    client_ip     TEXT
);
CREATE INDEX audit_logs_time ON audit_logs(op_time);
CREATE INDEX audit_logs_project ON audit_logs(project, op_time);

ALTER TABLE repositories ADD COLUMN pull_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE repositories SET updated_at = created_at;
ALTER TABLE manifests ADD COLUMN pulled_at INTEGER;
