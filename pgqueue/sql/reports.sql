-- name: list_jobs
-- One page of jobs, newest first: of one queue, status and job type when given, enqueued in
-- [since, until). Keyset-paginated on the primary key (before_id), so a deep page costs what
-- the first does; the bound is never NULL, so even a generic plan keeps it an index condition.
-- params: status text, queue text, job_type text, since timestamptz, until timestamptz, before_id bigint, limit int
SELECT id, queue, job_type, status::text AS status, priority, attempts, max_attempts, run_at,
    created_at, started_at, finished_at, left(last_error, 500) AS last_error, blocked
FROM pgqueue.jobs
WHERE id < coalesce($6::bigint, 9223372036854775807)
  AND ($1::text IS NULL OR status = $1::text::pgqueue.job_status)
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR job_type = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
ORDER BY id DESC
LIMIT $7;

-- name: list_finished_jobs
-- One page of the jobs of one finished status, the latest to finish first: of one queue and job
-- type when given, finished in [since, until). Walks jobs_finished_idx (status, finished_at),
-- so a rare status among millions of other finished rows is found at once. The cursor is the
-- last job shown: its id and finished_at, so that the next page holds even if that job was
-- retried or pruned since; given its id alone, its finished_at is read from the table.
-- params: status text, queue text, job_type text, since timestamptz, until timestamptz, before_id bigint, limit int, before_finished_at timestamptz
WITH cursor AS (
    SELECT coalesce($8::timestamptz,
                    (SELECT c.finished_at FROM pgqueue.jobs AS c WHERE c.id = $6::bigint),
                    'infinity') AS finished_at,
        coalesce($6::bigint, 9223372036854775807) AS id
)
SELECT j.id, j.queue, j.job_type, j.status::text AS status, j.priority, j.attempts,
    j.max_attempts, j.run_at, j.created_at, j.started_at, j.finished_at,
    left(j.last_error, 500) AS last_error, j.blocked
FROM pgqueue.jobs AS j
WHERE j.status = $1::text::pgqueue.job_status
  AND j.finished_at IS NOT NULL
  -- The cursor as scalar subqueries, run once before the scan, so its value bounds the index
  -- scan; joined instead, it filtered every newer row and a deep page cost its depth.
  AND j.finished_at <= (SELECT finished_at FROM cursor)  -- the index condition ...
  -- ... and the exact keyset bound
  AND (j.finished_at, j.id) < ((SELECT finished_at FROM cursor), (SELECT id FROM cursor))
  AND ($2::text IS NULL OR j.queue = $2)
  AND ($3::text IS NULL OR j.job_type = $3)
  AND j.finished_at >= coalesce($4::timestamptz, '-infinity')
  AND j.finished_at < coalesce($5::timestamptz, 'infinity')
ORDER BY j.finished_at DESC, j.id DESC
LIMIT $7;

-- name: job_relations
-- Around one job: its parents and the jobs still waiting on it (each with its status), and the
-- worker that holds or last held it while that worker is registered. One row, NULL if no job.
-- params: id bigint
SELECT
    coalesce((SELECT json_agg(json_build_object('id', p.id, 'job_type', p.job_type,
                                                'status', p.status) ORDER BY p.id)
              FROM pgqueue.jobs AS p WHERE p.id = ANY(j.depends_on)), '[]')::text AS parents,
    coalesce((SELECT json_agg(json_build_object('id', c.id, 'job_type', c.job_type,
                                                'status', c.status) ORDER BY c.id)
              FROM pgqueue.jobs AS c  -- jobs_blocked_idx: only the waiting ones are indexed
              WHERE c.depends_on @> ARRAY[j.id] AND c.status = 'pending' AND c.blocked),
             '[]')::text AS dependents,
    (SELECT json_build_object('id', w.id, 'host', w.host, 'pid', w.pid,
                              'heartbeat_at', w.heartbeat_at)
     FROM pgqueue.workers AS w WHERE w.id = j.worker_id)::text AS worker
FROM pgqueue.jobs AS j
WHERE j.id = $1;

-- name: throughput
-- Jobs finished per minute and queue over the last $1 minutes (the current one included): the
-- throughput_per_minute view's definition, bounded so jobs_finished_idx serves it.
-- minutes_ago counts on the database clock (0: the current minute).
-- params: minutes int
SELECT minute, (extract(epoch FROM date_trunc('minute', now()) - minute) / 60)::int AS minutes_ago,
    queue, completed, failed, cancelled
FROM (
    SELECT date_trunc('minute', finished_at) AS minute, queue,
        count(*) FILTER (WHERE status = 'completed') AS completed,
        count(*) FILTER (WHERE status = 'failed') AS failed,
        count(*) FILTER (WHERE status = 'cancelled') AS cancelled
    FROM pgqueue.jobs
    WHERE status IN ('completed', 'failed', 'cancelled')
      AND finished_at >= date_trunc('minute', now()) - make_interval(mins => $1 - 1)
    GROUP BY 1, 2
) AS per_minute
ORDER BY 1, 3;

-- name: queue_summary
-- Every queue with unfinished or failed jobs, or settings, from the documented view (whose cost
-- follows the unfinished and failed jobs, never the finished history).
-- params:
SELECT queue, pending, scheduled, blocked, running, failed, oldest_pending_seconds, paused,
    concurrency_limit, rate_limit, rate_period
FROM pgqueue.queue_summary;
