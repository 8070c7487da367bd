-- name: enqueue
-- Enqueue one job through the SQL function, so psql and Python behave the same. Returns its id
-- and whether it is an existing job holding unique_key (nothing was inserted). $13: the
-- enqueuer's trace headers (JSON text), NULL when it does not trace.
-- params: job_type text, payload text, queue text, run_at timestamptz, delay interval, priority int, max_attempts int, retry_backoff interval, unique_key text, unique_for interval, depends_on bigint[], run_anyway bool, trace_context text
SELECT id, existing FROM pgqueue.enqueue_job(
    job_type => $1, payload => $2::jsonb, queue => $3, run_at => $4, delay => $5,
    priority => $6, max_attempts => $7, retry_backoff => $8, unique_key => $9, unique_for => $10,
    depends_on => $11, run_anyway => $12, trace_context => $13::jsonb
);

-- name: enqueue_batch
-- Enqueue many jobs in one round trip; arrays hold one element per job, $9 (trace headers as
-- JSON text, or NULL) is the whole batch's. Returns ids in input order.
-- params: job_types text[], payloads text[], queues text[], run_ats timestamptz[], delays interval[], priorities int[], max_attempts int[], retry_backoffs interval[], trace_context text
SELECT id FROM pgqueue.enqueue_batch(
    $1::text[], $2::text[]::jsonb[], $3::text[], $4::timestamptz[], $5::interval[], $6::int[],
    $7::int[], $8::interval[], $9::jsonb
) AS id;

-- name: claim_jobs
-- Claim up to $4 due jobs of the types this worker knows ($2) from queues $1 for worker $3,
-- highest priority first, then oldest run_at; paused queues skipped, queue limits kept.
-- params: queues text[], job_types text[], worker_id uuid, max_jobs int
SELECT id, queue, job_type, payload, attempts, max_attempts, retry_backoff, depends_on,
    trace_context
FROM pgqueue.claim_jobs($1, $2, $3, $4);

-- name: seconds_until_next_job
-- Seconds from now (database clock) until the earliest job of these queues and types can be
-- claimed (negative when overdue); NULL when none can. Lets an idle worker wake exactly when a
-- delayed job comes due or a rate window opens (pgqueue.next_run_at says which queues count,
-- and reads index entries only, never the backlog).
-- params: queues text[], job_types text[]
SELECT extract(epoch FROM pgqueue.next_run_at($1, $2) - now())::float8;

-- name: queue_depths
-- Per queue of $1: the jobs ready to run now (pending, due, not waiting on parents) and how long
-- the oldest of them has been due (the workers' metrics). Counted by pgqueue.waiting_jobs: exact
-- up to 10,000, estimated above, so a scrape costs the same however large a backlog grows.
-- params: queues text[]
SELECT q.name AS queue, w.pending AS ready,
    coalesce(extract(epoch FROM now() - w.oldest_due), 0)::float8 AS oldest_age_seconds
FROM unnest($1::text[]) AS q(name)
CROSS JOIN LATERAL pgqueue.waiting_jobs(q.name) AS w
ORDER BY q.name;

-- name: complete_jobs
-- Record successful attempts, many per round trip, fenced by worker and attempt; releases their
-- dependents in the same transaction. Returns the ids written.
-- params: ids bigint[], attempts int[], results text[], worker_id uuid
SELECT id FROM pgqueue.complete_jobs($1::bigint[], $2::int[], $3::text[]::jsonb[], $4) AS id;

-- name: fail_job
-- Record a failed attempt (fenced like complete_jobs): retried after $6 while attempts remain
-- (max_attempts, else the worker's default $8) and the failure is not permanent ($7), else failed,
-- which cancels its dependents. Returns the new status, NULL if the claim was lost.
-- params: id bigint, attempt int, worker_id uuid, error text, last_error text, retry_delay interval, permanent bool, default_max_attempts int
SELECT pgqueue.fail_job($1, $2, $3, $4::jsonb, $5, $6, $7, $8);

-- name: snooze_job
-- The job asked to run again after $4 (pgqueue.Retry): back to pending, and the attempt is not
-- counted. Fenced like complete_jobs. Returns the id, or nothing if the claim was lost.
-- params: id bigint, attempt int, worker_id uuid, delay interval
UPDATE pgqueue.jobs
SET status = 'pending', run_at = now() + $4, attempts = attempts - 1, started_at = NULL,
    worker_id = NULL
WHERE id = $1 AND attempts = $2 AND status::text = 'running' AND worker_id = $3  -- see complete_jobs
RETURNING id;

-- name: rescue_expired_jobs
-- Jobs running under a worker whose heartbeat is older than $1, or whose row is gone: back to
-- pending with the attempt counted, or failed if it was the last one (max_attempts, else $2).
-- Returns their ids.
-- params: heartbeat_timeout interval, default_max_attempts int
SELECT id FROM pgqueue.rescue_expired_jobs($1, $2) AS id;

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
-- interrupted attempt, and wake the workers of their queues. Returns the released ids.
-- params: worker_id uuid
WITH released AS (
    UPDATE pgqueue.jobs
    SET status = 'pending', attempts = greatest(attempts - 1, 0), started_at = NULL,
        worker_id = NULL
    WHERE worker_id = $1 AND status = 'running'
    RETURNING id, queue
), woken AS (
    SELECT pg_notify('pgqueue_jobs', queue) FROM released GROUP BY queue
)
SELECT id FROM released
WHERE (SELECT count(*) FROM woken) >= 0;  -- referenced, so the notifications are sent

-- name: get_job
-- One job, everything about it.
-- params: id bigint
SELECT id, queue, job_type, payload::text AS payload, status::text AS status, priority, attempts,
    max_attempts, run_at, created_at, started_at, finished_at, result::text AS result, last_error,
    errors::text AS errors, worker_id, blocked, depends_on, unique_key, schedule_name, schedule_tick,
    trace_context::text AS trace_context
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
    errors::text AS errors, worker_id, blocked, depends_on, unique_key, schedule_name, schedule_tick,
    trace_context::text AS trace_context
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
    coalesce(sum(cancelled), 0)::bigint AS cancelled,
    coalesce(sum(blocked), 0)::bigint AS blocked
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

-- name: retry_failed_ids
-- Bring the failed jobs among $1 back to pending through pgqueue.retry_job (fresh attempts,
-- unique keys respected); one no longer failed (cancelled meanwhile, say) is left as it is.
-- Returns how many.
-- params: ids bigint[]
SELECT count(*) FILTER (WHERE pgqueue.retry_job(f.id))::int
FROM (SELECT id FROM pgqueue.jobs WHERE id = ANY($1::bigint[]) AND status = 'failed' ORDER BY id)
    AS f;

-- name: cancel_failed_jobs
-- Take failed jobs out of the dead letter queue without running them again: they become
-- cancelled and keep their errors. Their dependents were settled when they failed. Returns the
-- ids that moved.
-- params: ids bigint[]
UPDATE pgqueue.jobs SET status = 'cancelled'
WHERE id = ANY($1::bigint[]) AND status = 'failed'
RETURNING id;

-- name: clear_jobs
-- Delete the jobs of one status of one queue, or of all queues when $2 is NULL; their dependents
-- are cancelled. Returns how many.
-- params: status text, queue text
SELECT pgqueue.clear_jobs($1::text::pgqueue.job_status, $2);

-- name: queue_overview
-- One row per queue that has jobs or settings: counts from the documented view, and the
-- queue's shared state (paused, limits).
-- params:
SELECT coalesce(st.queue, s.name) AS queue, coalesce(st.pending, 0) AS pending,
    coalesce(st.scheduled, 0) AS scheduled, coalesce(st.running, 0) AS running,
    coalesce(st.completed, 0) AS completed, coalesce(st.failed, 0) AS failed,
    coalesce(st.cancelled, 0) AS cancelled, coalesce(st.blocked, 0) AS blocked,
    extract(epoch FROM st.oldest_pending_age)::float8 AS oldest_pending_seconds,
    coalesce(st.completed_last_minute, 0) AS completed_last_minute,
    coalesce(s.paused, false) AS paused, s.concurrency_limit, s.rate_limit, s.rate_period
FROM pgqueue.queue_stats AS st
FULL JOIN pgqueue.queues AS s ON s.name = st.queue
ORDER BY 1;

-- name: list_failed_jobs
-- The dead letter queue, newest failure first, optionally of one queue and one job type.
-- params: queue text, job_type text, limit int
SELECT id, queue, job_type, payload::text AS payload, status::text AS status, priority, attempts,
    max_attempts, run_at, created_at, started_at, finished_at, result::text AS result, last_error,
    errors::text AS errors, worker_id, blocked, depends_on, unique_key, schedule_name, schedule_tick,
    trace_context::text AS trace_context
FROM pgqueue.jobs
WHERE status = 'failed' AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR job_type = $2)
ORDER BY finished_at DESC, id DESC
LIMIT $3;

-- name: prune_jobs
-- Delete up to $3 jobs of status $1 that finished over $2 ago, oldest first. One pruner at a
-- time: the transaction-scoped advisory lock is held only by this statement, and a second
-- worker that does not get it prunes nothing. A job that still holds its unique_key, or that a
-- blocked job depends on, is kept. Returns how many were deleted.
-- params: status text, older_than interval, batch_size int
WITH pruner AS (
    SELECT pg_try_advisory_xact_lock(hashtext('pgqueue.prune')) AS is_mine
), doomed AS (
    SELECT j.id FROM pgqueue.jobs AS j, pruner
    WHERE pruner.is_mine AND j.status = $1::text::pgqueue.job_status
      AND j.finished_at < now() - $2::interval
      AND (j.unique_until IS NULL OR j.unique_until <= now())  -- still holds its unique_key
      AND NOT (j.has_dependents AND EXISTS (  -- a dependent still waits on it
          SELECT FROM pgqueue.jobs AS c
          WHERE c.status = 'pending' AND c.blocked AND c.depends_on @> ARRAY[j.id]))
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

-- name: parent_results
-- The parents of a job, for its handle(): type, status and result of each.
-- params: ids bigint[]
SELECT id, job_type, status::text AS status, result::text AS result
FROM pgqueue.jobs WHERE id = ANY($1)
ORDER BY id;
