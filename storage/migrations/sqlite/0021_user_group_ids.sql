-- A user group's id names its project memberships: it is never given out
-- twice. SQLite gives the highest deleted id to the next row of a table
-- without AUTOINCREMENT, so the table is rebuilt with it (PostgreSQL's
-- BIGSERIAL never reuses one).
CREATE TABLE user_groups_next (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name    TEXT NOT NULL,
    group_type    INTEGER NOT NULL DEFAULT 1,
    ldap_group_dn TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL
);
INSERT INTO user_groups_next (id, group_name, group_type, ldap_group_dn, created_at)
    SELECT id, group_name, group_type, ldap_group_dn, created_at FROM user_groups;
DROP TABLE user_groups;
ALTER TABLE user_groups_next RENAME TO user_groups;
