-- Multi-factor authentication: a TOTP secret per user (encrypted with
-- mfa.encryption_key_file; active once a code confirmed it, with the last
-- accepted time step so no code is accepted twice), the user's recovery
-- codes (SHA-256 hashes, each usable once), and the pending second steps of
-- logins (an mfa_token, stored as a hash, that dies after 5 wrong codes).
CREATE TABLE mfa_totp (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret TEXT NOT NULL,
    confirmed_at TIMESTAMP,
    last_step BIGINT,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE mfa_recovery_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    used_at TIMESTAMP
);
CREATE INDEX mfa_recovery_codes_user_id_idx ON mfa_recovery_codes (user_id);

CREATE TABLE mfa_challenges (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    failures INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX mfa_challenges_expires_at_idx ON mfa_challenges (expires_at);

-- How the session's user signed in (RFC 8176 amr values, space-separated):
-- kept by every refresh of the family.
ALTER TABLE refresh_tokens ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
