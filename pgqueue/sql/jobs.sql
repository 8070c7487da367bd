-- name: enqueue
-- Enqueue one job through the SQL function, so psql and Python behave the same.
-- params: job_type text, payload text, queue text, run_at timestamptz, delay interval, priority int, max_attempts int, retry_backoff interval
SELECT pgqueue.enqueue(
    job_type => $1, payload => $2::jsonb, queue => $3, run_at => $4, delay => $5,
    priority => $6, max_attempts => $7, retry_backoff => $8
);

-- name: enqueue_batch
-- Enqueue many jobs in one round trip; arrays hold one element per job. Returns ids in input order.
-- params: job_types text[], payloads text[], queues text[], run_ats timestamptz[], delays interval[], priorities int[], max_attempts int[], retry_backoffs interval[]
SELECT id FROM pgqueue.enqueue_batch(
    $1::text[], $2::text[]::jsonb[], $3::text[], $4::timestamptz[], $5::interval[], $6::int[],
    $7::int[], $8::interval[]
) AS id;

-- name: claim_jobs
-- Claim up to $4 due jobs of the types this worker knows ($2) from queues $1 for worker $3,
-- highest priority first, then oldest run_at.
-- params: queues text[], job_types text[], worker_id uuid, max_jobs int
WITH claimable AS MATERIALIZED (  -- MATERIALIZED: the LIMIT runs once, never re-evaluated per row
    SELECT id FROM pgqueue.jobs
    WHERE status = 'pending' AND run_at <= now() AND queue = ANY($1) AND job_type = ANY($2)
    ORDER BY priority DESC, run_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED  -- other workers skip the rows we lock instead of waiting on them
)
UPDATE pgqueue.jobs AS j
SET status = 'running', attempts = j.attempts + 1, started_at = now(), finished_at = NULL,
    worker_id = $3
FROM claimable
WHERE j.id = claimable.id
RETURNING j.id, j.queue, j.job_type, j.payload::text AS payload, j.attempts, j.max_attempts,
    j.retry_backoff;

-- name: seconds_until_next_job
-- Seconds from now (database clock) until the earliest pending job of these queues and types is
-- due (negative when overdue); NULL when none is pending. Lets an idle worker wake exactly when
-- a delayed job comes due.
-- params: queues text[], job_types text[]
SELECT extract(epoch FROM min(run_at) - now())::float8
FROM pgqueue.jobs
WHERE status = 'pending' AND queue = ANY($1) AND job_type = ANY($2);

-- name: complete_jobs
-- Record successful attempts, many per round trip. Fenced: only rows still running under this
-- worker and attempt change, so a completion that lost its claim writes nothing.
-- params: ids bigint[], attempts int[], results text[], worker_id uuid
UPDATE pgqueue.jobs AS j
SET status = 'completed', finished_at = now(), result = done.result::jsonb
FROM unnest($1::bigint[], $2::int[], $3::text[]) AS done(id, attempt, result)
WHERE j.id = done.id AND j.attempts = done.attempt AND j.status = 'running' AND j.worker_id = $4
RETURNING j.id;

-- name: fail_job
-- Record a failed attempt (fenced like complete_jobs): back to pending after $6 when attempts
-- remain (max_attempts, else the worker's default $8) and the failure is not permanent ($7),
-- else failed (the dead letter queue). The error is appended to the history (stamped with the
-- database clock), which keeps the last 20 attempts. Returns the new status.
-- params: id bigint, attempt int, worker_id uuid, error text, last_error text, retry_delay interval, permanent bool, default_max_attempts int
UPDATE pgqueue.jobs AS j
SET status = CASE WHEN retry.again THEN 'pending' ELSE 'failed' END::pgqueue.job_status,
    run_at = CASE WHEN retry.again THEN now() + $6 ELSE j.run_at END,
    finished_at = CASE WHEN retry.again THEN NULL ELSE now() END,
    worker_id = CASE WHEN retry.again THEN NULL ELSE j.worker_id END,
    last_error = $5,
    errors = jsonb_path_query_array(
        j.errors || jsonb_build_array($4::jsonb || jsonb_build_object('at', now())),
        '$[last - 19 to last]')
FROM (
    SELECT NOT $7::bool AND attempts < coalesce(max_attempts, $8) AS again
    FROM pgqueue.jobs WHERE id = $1
) AS retry
WHERE j.id = $1 AND j.attempts = $2 AND j.status = 'running' AND j.worker_id = $3
RETURNING j.status::text;

-- name: snooze_job
-- The job asked to run again after $4 (pgqueue.Retry): back to pending, and the attempt is not
-- counted. Fenced like complete_jobs. Returns the id, or nothing if the claim was lost.
-- params: id bigint, attempt int, worker_id uuid, delay interval
UPDATE pgqueue.jobs
SET status = 'pending', run_at = now() + $4, attempts = attempts - 1, started_at = NULL,
    worker_id = NULL
WHERE id = $1 AND attempts = $2 AND status = 'running' AND worker_id = $3
RETURNING id;

-- name: rescue_expired_jobs
-- Jobs running under a worker whose heartbeat is older than $1, or whose row is gone: back to
-- pending with the attempt counted, or failed if it was the last one (max_attempts, else $2), so
-- a job that kills its worker every time still ends in the dead letter queue. Returns their ids.
-- params: heartbeat_timeout interval, default_max_attempts int
WITH lost AS MATERIALIZED (
    SELECT j.id, j.attempts < coalesce(j.max_attempts, $2) AS again
    FROM pgqueue.jobs AS j
    WHERE j.status = 'running'
      AND NOT EXISTS (
          SELECT FROM pgqueue.workers AS w WHERE w.id = j.worker_id AND w.heartbeat_at > now() - $1::interval
      )
    FOR UPDATE OF j SKIP LOCKED  -- a worker rescuing at the same time takes the other rows
)
UPDATE pgqueue.jobs AS j
SET status = CASE WHEN lost.again THEN 'pending' ELSE 'failed' END::pgqueue.job_status,
    run_at = CASE WHEN lost.again THEN now() ELSE j.run_at END,
    finished_at = CASE WHEN lost.again THEN NULL ELSE now() END,
    worker_id = CASE WHEN lost.again THEN NULL ELSE j.worker_id END,
    last_error = format('WorkerLost: worker %s stopped heartbeating during attempt %s',
                        j.worker_id, j.attempts),
    errors = jsonb_path_query_array(
        j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempts, 'at', now(), 'worker_id', j.worker_id, 'type', 'WorkerLost',
            'message', format('worker %s stopped heartbeating', j.worker_id), 'traceback', '')),
        '$[last - 19 to last]')
FROM lost
WHERE j.id = lost.id
RETURNING j.id;

-- name: release_unheld_jobs
-- Jobs running under this worker that it does not hold ($2), claimed over $3 ago: a claim that
-- committed but whose reply was lost with the connection. Back to pending, attempt not charged.
-- params: worker_id uuid, held_ids bigint[], claimed_before interval
UPDATE pgqueue.jobs
SET status = 'pending', attempts = greatest(attempts - 1, 0), started_at = NULL, worker_id = NULL
WHERE worker_id = $1 AND status = 'running' AND NOT (id = ANY($2)) AND started_at < now() - $3::interval
RETURNING id;

-- name: release_worker_jobs
-- On shutdown, put every job this worker still holds back to pending without charging the
-- interrupted attempt. Returns the released ids.
-- params: worker_id uuid
UPDATE pgqueue.jobs
SET status = 'pending', attempts = greatest(attempts - 1, 0), started_at = NULL, worker_id = NULL
WHERE worker_id = $1 AND status = 'running'
RETURNING id;

-- name: get_job
-- One job, everything about it.
-- params: id bigint
SELECT id, queue, job_type, payload::text AS payload, status::text AS status, priority, attempts,
    max_attempts, run_at, created_at, started_at, finished_at, result::text AS result, last_error,
    errors::text AS errors, worker_id
FROM pgqueue.jobs WHERE id = $1;

-- name: get_job_status
-- A job's status alone.
-- params: id bigint
SELECT status::text FROM pgqueue.jobs WHERE id = $1;

-- name: list_recent_jobs
-- The newest jobs first, optionally of one status and one queue.
-- params: limit int, status text, queue text
SELECT id, queue, job_type, payload::text AS payload, status::text AS status, priority, attempts,
    max_attempts, run_at, created_at, started_at, finished_at, result::text AS result, last_error,
    errors::text AS errors, worker_id
FROM pgqueue.jobs
WHERE ($2::text IS NULL OR status = $2::pgqueue.job_status) AND ($3::text IS NULL OR queue = $3)
ORDER BY id DESC
LIMIT $1;

-- name: stats
-- Job counts by state for one queue, or all queues when $1 is NULL, from the queue_stats view
-- (which defines 'pending' as due now and 'scheduled' as due later).
-- params: queue text
SELECT coalesce(sum(pending), 0)::bigint AS pending,
    coalesce(sum(scheduled), 0)::bigint AS scheduled,
    coalesce(sum(running), 0)::bigint AS running,
    coalesce(sum(completed), 0)::bigint AS completed,
    coalesce(sum(failed), 0)::bigint AS failed,
    coalesce(sum(cancelled), 0)::bigint AS cancelled
FROM pgqueue.queue_stats
WHERE $1::text IS NULL OR queue = $1;

-- name: cancel_job
-- Cancel a pending job so it never runs, or a running one (its worker is told to stop it).
-- params: id bigint
SELECT pgqueue.cancel_job($1);

-- name: retry_job
-- Bring a failed or cancelled job back to pending with fresh attempts.
-- params: id bigint
SELECT pgqueue.retry_job($1);

-- name: retry_failed_jobs
-- Bring failed jobs (of one queue and/or job type, when given) back to pending. Returns how many.
-- params: queue text, job_type text
SELECT pgqueue.retry_failed_jobs($1, $2);

-- name: clear_jobs
-- Delete the jobs of one status of one queue, or of all queues when $2 is NULL. Returns how many.
-- params: status text, queue text
WITH deleted AS (
    DELETE FROM pgqueue.jobs
    WHERE status = $1::text::pgqueue.job_status AND ($2::text IS NULL OR queue = $2)
    RETURNING 1
)
SELECT count(*) FROM deleted;

-- name: queue_overview
-- One row per queue, from the documented view.
-- params:
SELECT queue, pending, scheduled, running, completed, failed, cancelled,
    extract(epoch FROM oldest_pending_age)::float8 AS oldest_pending_seconds,
    completed_last_minute
FROM pgqueue.queue_stats
ORDER BY queue;

-- name: list_failed_jobs
-- The dead letter queue, newest failure first, optionally of one queue and one job type.
-- params: queue text, job_type text, limit int
SELECT id, queue, job_type, payload::text AS payload, status::text AS status, priority, attempts,
    max_attempts, run_at, created_at, started_at, finished_at, result::text AS result, last_error,
    errors::text AS errors, worker_id
FROM pgqueue.jobs
WHERE status = 'failed' AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR job_type = $2)
ORDER BY finished_at DESC, id DESC
LIMIT $3;

-- name: prune_jobs
-- Delete up to $3 jobs of status $1 that finished over $2 ago, oldest first. One pruner at a
-- time: the transaction-scoped advisory lock is held only by this statement, and a second
-- worker that does not get it prunes nothing. Returns how many were deleted.
-- params: status text, older_than interval, batch_size int
WITH pruner AS (
    SELECT pg_try_advisory_xact_lock(hashtext('pgqueue.prune')) AS is_mine
), doomed AS (
    SELECT j.id FROM pgqueue.jobs AS j, pruner
    WHERE pruner.is_mine AND j.status = $1::text::pgqueue.job_status
      AND j.finished_at < now() - $2::interval
    ORDER BY j.finished_at
    LIMIT $3
    FOR UPDATE OF j SKIP LOCKED  -- never wait on a row someone is retrying
), deleted AS (
    DELETE FROM pgqueue.jobs AS j USING doomed WHERE j.id = doomed.id RETURNING 1
)
SELECT count(*) FROM deleted;

-- name: cancelled_among
-- Which of these jobs (held by a worker) have been cancelled: how cancel requests reach a
-- worker that does not LISTEN, and a backstop for a missed notification.
-- params: ids bigint[]
SELECT id FROM pgqueue.jobs WHERE id = ANY($1) AND status = 'cancelled';
