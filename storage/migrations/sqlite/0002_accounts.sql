-- Local users (source 'db') and users recorded at their first LDAP login
-- (source 'ldap', no password hash here: the directory checks it).
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    email         TEXT,
    admin         INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    source        TEXT NOT NULL,
    ldap_dn       TEXT,
    ldap_groups   TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Projects: the first path segment of a repository. Public projects may be
-- pulled anonymously.
CREATE TABLE projects (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    public     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
