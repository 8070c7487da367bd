-- name: register_worker
-- A worker process announces itself; the row is its liveness record.
-- params: id uuid, host text, pid int, queues text[], concurrency int
INSERT INTO pgqueue.workers (id, host, pid, queues, concurrency) VALUES ($1, $2, $3, $4, $5);

-- name: heartbeat_worker
-- Prove the worker is alive, in database time.
-- params: id uuid
UPDATE pgqueue.workers SET heartbeat_at = now() WHERE id = $1;

-- name: deregister_worker
-- A worker that stopped cleanly removes its row.
-- params: id uuid
DELETE FROM pgqueue.workers WHERE id = $1;
