-- Reverts revision 0008: workers judged again by the judge's own timeout, no lease column.
DROP FUNCTION pgqueue.deregister_worker(uuid);
DROP TRIGGER workers_keep_leased ON pgqueue.workers;
DROP FUNCTION pgqueue.keep_leased_workers();

-- Jobs running under a worker whose heartbeat is older than heartbeat_timeout, or whose row is
-- gone: back to pending with the attempt counted, or failed if it was the last one
-- (max_attempts, else default_max_attempts), so a job that kills its worker every time still
-- ends in the dead letter queue. Wakes the workers of the queues they return to. Returns
-- their ids.
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
              WHERE w.id = j.worker_id AND w.heartbeat_at > now() - heartbeat_timeout
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

DROP FUNCTION pgqueue.worker_lease(interval, interval);
ALTER TABLE pgqueue.workers DROP COLUMN heartbeat_timeout;
