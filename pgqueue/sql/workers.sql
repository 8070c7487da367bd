-- name: heartbeat_worker
-- A worker proves it is alive, in database time; the first beat registers it with its lease
-- ($6: it counts as dead after that long without a beat), and a worker whose row was removed
-- while it was cut off registers again.
-- params: id uuid, host text, pid int, queues text[], concurrency int, heartbeat_timeout interval
INSERT INTO pgqueue.workers (id, host, pid, queues, concurrency, heartbeat_timeout)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now();

-- name: deregister_worker
-- A worker that stopped cleanly gives up its lease and removes its row.
-- params: id uuid
SELECT pgqueue.deregister_worker($1);

-- name: delete_expired_workers
-- Remove the rows of workers whose lease ran out (their jobs are rescued first); $1 is the lease
-- of workers that declared none (pgqueue.worker_lease). Returns how many were removed.
-- params: heartbeat_timeout interval
WITH deleted AS (
    DELETE FROM pgqueue.workers
    WHERE heartbeat_at < now() - pgqueue.worker_lease(heartbeat_timeout, $1::interval)
    RETURNING 1
)
SELECT count(*) FROM deleted;

-- name: ping
-- A round trip that proves a connection still works.
-- params:
SELECT 1;

-- name: list_workers
-- Registered workers, oldest first, with the ids of the jobs each holds.
-- params:
SELECT w.id, w.host, w.pid, w.queues, w.concurrency, w.started_at, w.heartbeat_at,
    w.heartbeat_timeout,
    coalesce(array_agg(j.id ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL), '{}') AS job_ids
FROM pgqueue.workers AS w
LEFT JOIN pgqueue.jobs AS j ON j.worker_id = w.id AND j.status = 'running'
GROUP BY w.id
ORDER BY w.started_at, w.id;
