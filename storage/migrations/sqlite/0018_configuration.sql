-- Settings changed at run time through /configurations (read-only mode,
-- who may create projects, token lifetime, new projects' quota): one row
-- per setting changed from its default; values as JSON text.
CREATE TABLE configuration (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
