DROP TRIGGER users_count_delete;
DROP TRIGGER users_count_insert;
DROP TABLE user_count;
