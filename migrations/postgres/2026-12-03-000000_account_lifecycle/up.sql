-- Account lifecycle: whether the email has been confirmed, an email change
-- waiting for its confirmation, and the one-time tokens of password reset,
-- email verification and email change (stored as SHA-256 hashes only).
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN pending_email TEXT;
-- An address imported from Django was the account's own there: trusted.
UPDATE users SET email_verified = TRUE
WHERE email_lower IS NOT NULL
  AND id IN (SELECT user_id FROM legacy_accounts WHERE user_id IS NOT NULL);

CREATE TABLE one_time_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- password_reset, verify_email or change_email
    purpose TEXT NOT NULL,
    -- The address a verification or change token confirms.
    email TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX one_time_tokens_user_id_purpose_idx ON one_time_tokens (user_id, purpose);
CREATE INDEX one_time_tokens_expires_at_idx ON one_time_tokens (expires_at);
