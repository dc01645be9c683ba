-- How many users there are, kept by triggers in the same transaction as
-- every insert and delete (registration, the CLI, the Django import), so
-- that `GET /users` reads one row instead of counting the table. Statement
-- triggers with transition tables: a bulk insert updates the row once.
CREATE TABLE user_count (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO user_count (id, n) SELECT 1, COUNT(*) FROM users;

CREATE FUNCTION users_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE user_count SET n = n + (SELECT COUNT(*) FROM inserted) WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE FUNCTION users_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE user_count SET n = n - (SELECT COUNT(*) FROM deleted) WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_count_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION users_count_inserted();

CREATE TRIGGER users_count_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION users_count_deleted();
