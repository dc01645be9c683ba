-- Accounts imported from Django (`tessera import django`): `email_lower`
-- becomes nullable (a Django user may have no email; NULLs never collide in a
-- UNIQUE column) and `is_active` carries Django's flag (false: the account
-- cannot log in, refresh or exchange a key).
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
    is_active BOOLEAN NOT NULL DEFAULT TRUE
);
INSERT INTO users_new (id, username, username_lower, email, email_lower, password_hash,
                       role, tokens_valid_after, created_at, updated_at)
SELECT id, username, username_lower, email, email_lower, password_hash,
       role, tokens_valid_after, created_at, updated_at
FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE INDEX users_created_at_id_idx ON users (created_at, id);

-- One row per Django user ever imported, kept when the tessera account is
-- deleted (user_id becomes NULL): a re-run of the import recognises it and
-- never re-creates a deleted account.
CREATE TABLE legacy_accounts (
    legacy_id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    username_lower TEXT NOT NULL,
    imported_at TIMESTAMP NOT NULL
);
CREATE INDEX legacy_accounts_user_id_idx ON legacy_accounts (user_id);

-- DRF authtoken keys, as SHA-256 hashes. A key is exchanged once; it stays
-- as a retired row (and as an ownerless one when its account is deleted),
-- so a re-run of the import cannot revive it.
CREATE TABLE legacy_tokens (
    key_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP
);
CREATE INDEX legacy_tokens_user_id_idx ON legacy_tokens (user_id);
COMMIT;
PRAGMA foreign_keys = ON;
