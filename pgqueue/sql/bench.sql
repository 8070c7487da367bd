-- Benchmark set-up and checks (`pgqueue bench`): rows put straight into the table, counts that
-- stay cheap however many rows there are, and what the run reports about the server. Not used
-- by queues or workers.

-- name: insert_finished_jobs
-- Rows $4..$5 of $6 completed jobs (queue $1, job type $2, run by worker $3), ids in the order
-- they finished: the last one at $7, the first one $8 earlier. Each ran for 1 ms and started
-- 10 ms after it was enqueued.
-- params: queue text, job_type text, worker_id uuid, first bigint, last bigint, rows bigint, newest timestamptz, spread interval
INSERT INTO pgqueue.jobs (queue, job_type, payload, status, attempts, run_at, created_at,
    started_at, finished_at, worker_id)
SELECT $1, $2, '{}', 'completed', 1, t.finished_at - interval '11 ms',
    t.finished_at - interval '11 ms', t.finished_at - interval '1 ms', t.finished_at, $3
FROM generate_series($4::bigint, $5::bigint) AS g
CROSS JOIN LATERAL (
    SELECT $7::timestamptz - $8::interval * (($6::bigint - g)::float8 / $6::bigint) AS finished_at
) AS t;

-- name: insert_pending_jobs
-- $3 pending jobs of queue $1 (job type $2), due $4 from now, a millisecond apart.
-- params: queue text, job_type text, rows bigint, due_in interval
INSERT INTO pgqueue.jobs (queue, job_type, payload, run_at)
SELECT $1, $2, '{}', now() + $4::interval + g * interval '1 ms'
FROM generate_series(1, $3::bigint) AS g;

-- name: database_time_ago
-- The database clock, $1 ago.
-- params: age interval
SELECT now() - $1::interval;

-- name: vacuum_analyze_jobs
-- The visibility map and statistics that autovacuum would have left on a long-lived table, and
-- the index entries of finished jobs it removes.
-- params:
VACUUM ANALYZE pgqueue.jobs;

-- name: checkpoint
-- Write out dirty pages now (needs superuser or pg_checkpoint).
-- params:
CHECKPOINT;

-- name: count_pending_jobs
-- params: queue text
SELECT count(*) FROM pgqueue.jobs WHERE queue = $1 AND status = 'pending';

-- name: count_completed_jobs
-- params:
SELECT count(*) FROM pgqueue.jobs WHERE status = 'completed';

-- name: count_completed_between
-- Over the primary key: the cost is that of the range, whatever else the table holds.
-- params: first bigint, last bigint
SELECT count(*) FROM pgqueue.jobs WHERE id BETWEEN $1 AND $2 AND status = 'completed';

-- name: count_finished_by
-- params: moment timestamptz
SELECT count(*) FROM pgqueue.jobs WHERE finished_at <= $1;

-- name: server_version
-- params:
SHOW server_version;

-- name: backend_pid
-- The server process of this session.
-- params:
SELECT pg_backend_pid();

-- name: other_client_backends
-- The server's backends of every client session of this database but the sessions $1 (an
-- autovacuum worker there is the server's, not a client's).
-- params: excluded int[]
SELECT pid FROM pg_stat_activity WHERE datname = current_database()
    AND backend_type = 'client backend' AND pid <> ALL($1);
