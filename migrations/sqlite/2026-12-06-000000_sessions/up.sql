-- Sessions: one per refresh-token family (the family id is the session id),
-- with what the user sees in GET /auth/sessions. ended_at is set when the
-- session is ended (DELETE /auth/sessions/{id}, logout with its refresh
-- token, reuse detection, log out everywhere...): its access tokens (which
-- carry the id as `sid`) then fail on the logout-sensitive routes.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    user_agent TEXT,
    ip TEXT,
    ended_at TIMESTAMP
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_last_used_at_idx ON sessions (last_used_at);
