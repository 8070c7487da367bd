-- name: schema_is_installed
-- Whether pgqueue's migrations have been applied to this database.
-- params:
SELECT to_regclass('pgqueue.jobs') IS NOT NULL;
