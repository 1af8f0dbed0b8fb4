-- Registry endpoints (Harbor's /registries) and projects that cache or
-- front one of them.

CREATE TABLE registries (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    url             TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    insecure        INTEGER NOT NULL DEFAULT 0,
    -- 'basic' or NULL (anonymous). The secret is needed in clear to log in
    -- upstream; the API never shows it.
    credential_type TEXT,
    access_key      TEXT,
    access_secret   TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- A project with a registry is read-only cache of it ('cache') or forwards
-- every request to it ('passthrough').
ALTER TABLE projects ADD COLUMN registry_id INTEGER REFERENCES registries(id);
ALTER TABLE projects ADD COLUMN proxy_mode TEXT;
