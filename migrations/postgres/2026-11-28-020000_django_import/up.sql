-- Accounts imported from Django: `email_lower` becomes nullable (a Django
-- user may have no email; NULLs never collide in a UNIQUE column), `is_active`
-- carries Django's flag (false: the account cannot log in), and `legacy_id`
-- remembers the Django row an account came from, so a re-run of the import
-- recognises it. DRF authtoken keys are kept only as SHA-256 hashes.
ALTER TABLE users ALTER COLUMN email_lower DROP NOT NULL;
ALTER TABLE users ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE users ADD COLUMN legacy_id TEXT UNIQUE;

CREATE TABLE legacy_tokens (
    key_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP
);
CREATE INDEX legacy_tokens_user_id_idx ON legacy_tokens (user_id);
