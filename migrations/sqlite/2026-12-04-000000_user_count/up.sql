-- How many users there are, kept by triggers in the same transaction as
-- every insert and delete (registration, the CLI, the Django import), so
-- that `GET /users` reads one row instead of counting the table.
CREATE TABLE user_count (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO user_count (id, n) SELECT 1, COUNT(*) FROM users;

CREATE TRIGGER users_count_insert AFTER INSERT ON users
BEGIN
    UPDATE user_count SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER users_count_delete AFTER DELETE ON users
BEGIN
    UPDATE user_count SET n = n - 1 WHERE id = 1;
END;
