-- Failed logins per account (a user id, or the identifier tried when no user
-- matches), so throttling holds across every instance sharing the database.
CREATE TABLE login_failures (
    account TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    window_started_at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_window_started_at_idx ON login_failures (window_started_at);
