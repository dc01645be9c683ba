DROP TABLE legacy_tokens;
DELETE FROM users WHERE email_lower IS NULL;
ALTER TABLE users DROP COLUMN legacy_id;
ALTER TABLE users DROP COLUMN is_active;
ALTER TABLE users ALTER COLUMN email_lower SET NOT NULL;
