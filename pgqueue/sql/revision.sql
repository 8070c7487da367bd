-- name: schema_is_installed
-- Whether pgqueue's migrations have been applied to this database.
-- params:
SELECT to_regclass('pgqueue.alembic_version') IS NOT NULL;

-- name: schema_revision
-- The alembic revision the pgqueue schema is at (only once schema_is_installed).
-- params:
SELECT max(version_num) FROM pgqueue.alembic_version;
