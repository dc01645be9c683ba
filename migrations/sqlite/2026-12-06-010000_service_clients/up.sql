-- Service clients (machine-to-machine, OAuth 2.0 client credentials): the
-- secret is 256 random bits, stored only as its SHA-256 (hex); scopes are
-- space-separated.
CREATE TABLE service_clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
