-- Password-reset links sent by mail. Only the SHA-256 of a link's token is
-- stored: a copy of the database resets nobody's password. Not copied by
-- `berth migrate` (a link lasts 30 minutes).
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX password_resets_user ON password_resets (user_id);
CREATE INDEX password_resets_expiry ON password_resets (expires_at);
