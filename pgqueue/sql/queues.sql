-- name: set_queue_paused
-- Pause a queue (no worker claims from it) or resume it; the row is created on first use.
-- Resuming wakes the queue's workers.
-- params: queue text, paused bool
WITH changed AS (
    INSERT INTO pgqueue.queues AS s (name, paused) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now()
    RETURNING s.name, s.paused
)
SELECT pg_notify('pgqueue_jobs', name) FROM changed WHERE NOT paused;

-- name: set_queue_limits
-- Set a queue's cluster-wide limits: at most $2 running at once, at most $3 started per $4
-- window. NULL removes a limit, or with $5 (a worker starting) keeps the one set before.
-- params: queue text, concurrency_limit int, rate_limit int, rate_period interval, keep_unset bool
WITH changed AS (
    INSERT INTO pgqueue.queues AS s (name, concurrency_limit, rate_limit, rate_period)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (name) DO UPDATE
    SET concurrency_limit = CASE WHEN $5 AND excluded.concurrency_limit IS NULL
                                 THEN s.concurrency_limit ELSE excluded.concurrency_limit END,
        rate_limit = CASE WHEN $5 AND excluded.rate_limit IS NULL
                          THEN s.rate_limit ELSE excluded.rate_limit END,
        rate_period = CASE WHEN $5 AND excluded.rate_limit IS NULL
                           THEN s.rate_period ELSE excluded.rate_period END,
        updated_at = now()
    RETURNING s.name
)
SELECT pg_notify('pgqueue_jobs', name) FROM changed;
