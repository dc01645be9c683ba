-- Accounts imported from Django (`tessera import django`): `email_lower`
-- becomes nullable (a Django user may have no email; NULLs never collide in a
-- UNIQUE column) and `is_active` carries Django's flag (false: the account
-- cannot log in, refresh or exchange a key).
ALTER TABLE users ALTER COLUMN email_lower DROP NOT NULL;
ALTER TABLE users ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT TRUE;

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
