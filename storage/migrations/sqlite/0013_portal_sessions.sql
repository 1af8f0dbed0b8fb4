-- Portal sign-ins. The cookie's value is never stored: a copy of the
-- database does not let anyone into a session. Not copied by `berth
-- migrate` (sessions belong to the running installation).
CREATE TABLE portal_sessions (
    id_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    credential TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX portal_sessions_user ON portal_sessions (username);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);
