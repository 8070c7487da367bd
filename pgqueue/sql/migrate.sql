-- What `pgqueue migrate` runs before alembic's revisions (pgqueue.migrate.prepare_schema).

-- name: create_schema
-- The schema alembic's version table (pgqueue.alembic_version) lives in: created first.
-- params:
CREATE SCHEMA IF NOT EXISTS pgqueue;

-- name: lock_migrations
-- Two processes migrating at once: the second waits here until the first commits, then finds
-- nothing left to do.
-- params:
SELECT pg_advisory_xact_lock(hashtext('pgqueue.migrate'));
