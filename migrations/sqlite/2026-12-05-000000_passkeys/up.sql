-- Passkeys (WebAuthn): each user's registered credentials, found by their
-- credential id at a passwordless login (unique: one credential, one
-- account), with the serialised webauthn-rs `Passkey` (public key, counter,
-- backup state); and the ceremonies between a start and its finish (the
-- serialised webauthn-rs state, with its challenge): a finish takes (deletes)
-- its row, so a state is used once, and a row expires after 5 minutes.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    passkey TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX passkeys_user_id_idx ON passkeys (user_id);

CREATE TABLE webauthn_ceremonies (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires_at_idx ON webauthn_ceremonies (expires_at);
