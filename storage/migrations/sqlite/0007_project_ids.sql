-- Project ids are never given out twice. SQLite hands the highest id of a
-- deleted row to the next insert; robot permissions name projects by id
-- (a project deleted and created again under the same name is another
-- project), so inserts take max(highest id, highest id ever deleted) + 1.
CREATE TABLE id_high_water (
    name TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
INSERT INTO id_high_water (name, last) SELECT 'projects', coalesce(max(id), 0) FROM projects;
CREATE TRIGGER projects_high_water AFTER DELETE ON projects
BEGIN
    UPDATE id_high_water SET last = max(last, OLD.id) WHERE name = 'projects';
END;

-- Robot permissions were keyed by project name; record the id of the
-- project each names today. An entry whose project is gone gets a null
-- id, which grants nothing.
UPDATE robots SET permissions = (
    SELECT json_group_array(
        CASE WHEN json_extract(e.value, '$.namespace') = '*' THEN json(e.value)
        ELSE json_set(e.value, '$.project_id',
            (SELECT p.id FROM projects p WHERE p.name = json_extract(e.value, '$.namespace')))
        END)
    FROM json_each(robots.permissions) e)
WHERE json_valid(permissions) AND json_type(permissions) = 'array';
CREATE INDEX users_username_nocase ON users(username COLLATE NOCASE);

-- When a project was created, to the millisecond: its audit log starts
-- there (records of an earlier project of the same name are not its own).
ALTER TABLE projects ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0;
UPDATE projects SET created_ms = created_at * 1000;
