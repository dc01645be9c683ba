-- Accounts imported from Django: `email_lower` becomes nullable (a Django
-- user may have no email; NULLs never collide in a UNIQUE column), `is_active`
-- carries Django's flag (false: the account cannot log in), and `legacy_id`
-- remembers the Django row an account came from, so a re-run of the import
-- recognises it. DRF authtoken keys are kept only as SHA-256 hashes.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE users_new (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    username_lower TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    email_lower TEXT UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    tokens_valid_after TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    legacy_id TEXT UNIQUE
);
INSERT INTO users_new (id, username, username_lower, email, email_lower, password_hash,
                       role, tokens_valid_after, created_at, updated_at)
SELECT id, username, username_lower, email, email_lower, password_hash,
       role, tokens_valid_after, created_at, updated_at
FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE INDEX users_created_at_id_idx ON users (created_at, id);

CREATE TABLE legacy_tokens (
    key_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP
);
CREATE INDEX legacy_tokens_user_id_idx ON legacy_tokens (user_id);
COMMIT;
PRAGMA foreign_keys = ON;
