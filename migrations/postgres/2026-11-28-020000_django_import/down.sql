DROP TABLE legacy_tokens;
DROP TABLE legacy_accounts;
-- The older schema has no disabled accounts and no accounts without an
-- email: a disabled account keeps its row but can no longer log in.
UPDATE users SET password_hash = '!' || password_hash WHERE NOT is_active;
DELETE FROM users WHERE email_lower IS NULL;
ALTER TABLE users DROP COLUMN is_active;
ALTER TABLE users ALTER COLUMN email_lower SET NOT NULL;
