-- pgqueue revision 0008: a worker counts as dead only after a silence longer than the lease it
-- declared, whatever the settings of the worker that judges it.

-- The worker's lease: it counts as dead once its last heartbeat is older than this. NULL for a
-- worker of revision 0007 or before, which records none.
ALTER TABLE pgqueue.workers
    ADD COLUMN heartbeat_timeout interval CHECK (heartbeat_timeout > interval '0');

-- The lease a worker is judged by: the one it declared; for a worker that declared none, the
-- judge's own timeout but never less than 30 s, the default before leases were recorded.
CREATE FUNCTION pgqueue.worker_lease(declared interval, judge_timeout interval)
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT coalesce(declared, greatest(judge_timeout, interval '30 seconds')) $$;

-- As in 0005, but each worker is judged by its own lease; heartbeat_timeout (the caller's own)
-- judges only the workers that declared none.
CREATE OR REPLACE FUNCTION pgqueue.rescue_expired_jobs(heartbeat_timeout interval, default_max_attempts integer)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    rescued bigint[];
    now_failed bigint[];
    retried_queues text[];
BEGIN
    WITH lost AS MATERIALIZED (
        SELECT j.id, j.attempts < coalesce(j.max_attempts, default_max_attempts) AS again
        FROM pgqueue.jobs AS j
        WHERE j.status = 'running'
          AND NOT EXISTS (
              SELECT FROM pgqueue.workers AS w
              WHERE w.id = j.worker_id
                AND w.heartbeat_at > now() - pgqueue.worker_lease(
                    w.heartbeat_timeout, rescue_expired_jobs.heartbeat_timeout)
          )
        FOR UPDATE OF j SKIP LOCKED  -- a worker rescuing at the same time takes the other rows
    ), updated AS (
        UPDATE pgqueue.jobs AS j
        SET status = CASE WHEN lost.again THEN 'pending' ELSE 'failed' END::pgqueue.job_status,
            run_at = CASE WHEN lost.again THEN now() ELSE j.run_at END,
            finished_at = CASE WHEN lost.again THEN NULL ELSE now() END,
            worker_id = CASE WHEN lost.again THEN NULL ELSE j.worker_id END,
            last_error = format('WorkerLost: worker %s stopped heartbeating during attempt %s',
                                j.worker_id, j.attempts),
            errors = jsonb_path_query_array(
                j.errors || jsonb_build_array(jsonb_build_object(
                    'attempt', j.attempts, 'at', now(), 'worker_id', j.worker_id,
                    'type', 'WorkerLost',
                    'message', format('worker %s stopped heartbeating', j.worker_id),
                    'traceback', '')),
                '$[last - 19 to last]')
        FROM lost
        WHERE j.id = lost.id
        RETURNING j.id, j.queue, j.status, j.has_dependents
    )
    SELECT array_agg(u.id), array_agg(u.id) FILTER (WHERE u.status = 'failed' AND u.has_dependents),
        array_agg(DISTINCT u.queue) FILTER (WHERE u.status = 'pending')
    INTO rescued, now_failed, retried_queues FROM updated AS u;
    IF now_failed IS NOT NULL THEN
        PERFORM pgqueue.settle_dependents(now_failed);
    END IF;
    PERFORM pg_notify('pgqueue_jobs', q) FROM unnest(retried_queues) AS q;
    RETURN QUERY SELECT unnest(rescued);
END
$$;

-- A worker of revision 0007 or before deletes the rows of workers silent for longer than its
-- own timeout, which may be shorter than the lease another worker declared; the rescue then
-- takes the jobs of a worker whose row is gone, and the worker's next claim would be taken too.
-- So a row stays while its lease runs: only an expired row, or one its worker gave up
-- (pgqueue.deregister_worker), is deleted.
CREATE FUNCTION pgqueue.keep_leased_workers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.heartbeat_timeout IS NOT NULL AND OLD.heartbeat_at > now() - OLD.heartbeat_timeout THEN
        RETURN NULL;  -- the row stays
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER workers_keep_leased BEFORE DELETE ON pgqueue.workers
FOR EACH ROW EXECUTE FUNCTION pgqueue.keep_leased_workers();

-- A worker that stops removes its row: it gives up its lease first, so the row may go. Its jobs
-- were released before; any it still holds can be rescued at once.
CREATE FUNCTION pgqueue.deregister_worker(worker_id uuid) RETURNS void
LANGUAGE sql AS $$
    UPDATE pgqueue.workers SET heartbeat_at = '-infinity' WHERE id = worker_id;
    DELETE FROM pgqueue.workers WHERE id = worker_id;
$$;
