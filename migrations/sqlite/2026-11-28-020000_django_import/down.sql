PRAGMA foreign_keys = OFF;
BEGIN;
DROP TABLE legacy_tokens;
DROP TABLE legacy_accounts;
-- The older schema has no disabled accounts and no accounts without an
-- email: a disabled account keeps its row but can no longer log in.
UPDATE users SET password_hash = '!' || password_hash WHERE NOT is_active;
DELETE FROM users WHERE email_lower IS NULL;
CREATE TABLE users_old (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    username_lower TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    tokens_valid_after TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO users_old
SELECT id, username, username_lower, email, email_lower, password_hash,
       role, tokens_valid_after, created_at, updated_at
FROM users;
DROP TABLE users;
ALTER TABLE users_old RENAME TO users;
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
DELETE FROM refresh_tokens WHERE user_id NOT IN (SELECT id FROM users);
COMMIT;
PRAGMA foreign_keys = ON;
