-- Reverts revision 0005. Blocked jobs become plain pending jobs; schedules and queue settings go.
DROP VIEW pgqueue.queue_stats;
CREATE VIEW pgqueue.queue_stats AS
SELECT queue,
    count(*) FILTER (WHERE status = 'pending' AND run_at <= now()) AS pending,
    count(*) FILTER (WHERE status = 'pending' AND run_at > now()) AS scheduled,
    count(*) FILTER (WHERE status = 'running') AS running,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    now() - min(run_at) FILTER (WHERE status = 'pending' AND run_at <= now())
        AS oldest_pending_age,
    count(*) FILTER (WHERE status = 'completed' AND finished_at > now() - interval '1 minute')
        AS completed_last_minute
FROM pgqueue.jobs
GROUP BY queue;

DROP FUNCTION pgqueue.enqueue_schedule_ticks(text, timestamptz, timestamptz[], timestamptz);
DROP FUNCTION pgqueue.clear_jobs(pgqueue.job_status, text);
DROP FUNCTION pgqueue.rescue_expired_jobs(interval, integer);
DROP FUNCTION pgqueue.fail_job(bigint, integer, uuid, jsonb, text, interval, boolean, integer);
DROP FUNCTION pgqueue.complete_jobs(bigint[], integer[], jsonb[], uuid);
DROP FUNCTION pgqueue.notify_freed_slots(text[]);
DROP FUNCTION pgqueue.claim_jobs(text[], text[], uuid, integer);
DROP FUNCTION pgqueue.enqueue(text, jsonb, text, timestamptz, integer, integer, interval, interval,
    text, interval, bigint[], boolean);
DROP FUNCTION pgqueue.enqueue_job(text, jsonb, text, timestamptz, integer, integer, interval,
    interval, text, interval, bigint[], boolean);

CREATE FUNCTION pgqueue.enqueue(
    job_type      text,
    payload       jsonb DEFAULT '{}',
    queue         text DEFAULT 'default',
    run_at        timestamptz DEFAULT NULL,
    priority      integer DEFAULT 0,
    max_attempts  integer DEFAULT NULL,
    delay         interval DEFAULT NULL,
    retry_backoff interval DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    IF enqueue.run_at IS NOT NULL AND enqueue.delay IS NOT NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: give run_at or delay, not both' USING ERRCODE = '22023';
    END IF;
    IF enqueue.delay < interval '0' THEN
        RAISE EXCEPTION 'pgqueue.enqueue: delay % is negative', enqueue.delay USING ERRCODE = '22023';
    END IF;
    INSERT INTO pgqueue.jobs (job_type, payload, queue, run_at, priority, max_attempts, retry_backoff)
    VALUES (enqueue.job_type, enqueue.payload, enqueue.queue,
            coalesce(enqueue.run_at, now() + coalesce(enqueue.delay, interval '0')),
            enqueue.priority, enqueue.max_attempts, enqueue.retry_backoff)
    RETURNING id INTO new_id;
    PERFORM pg_notify('pgqueue_jobs', enqueue.queue);
    RETURN new_id;
END
$$;

CREATE OR REPLACE FUNCTION pgqueue.cancel_job(job_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    was_running boolean;
BEGIN
    UPDATE pgqueue.jobs AS j SET status = 'cancelled', finished_at = now()
    FROM (SELECT id, status = 'running' AS running FROM pgqueue.jobs
          WHERE id = job_id AND status IN ('pending', 'running') FOR UPDATE) AS before
    WHERE j.id = before.id
    RETURNING before.running INTO was_running;
    IF was_running IS NULL THEN
        RETURN false;
    END IF;
    IF was_running THEN
        PERFORM pg_notify('pgqueue_cancel', job_id::text);
    END IF;
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION pgqueue.retry_job(job_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    job_queue text;
BEGIN
    UPDATE pgqueue.jobs
    SET status = 'pending', attempts = 0, run_at = now(), started_at = NULL, finished_at = NULL,
        result = NULL, worker_id = NULL
    WHERE id = job_id AND status IN ('failed', 'cancelled')
    RETURNING queue INTO job_queue;
    IF job_queue IS NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('pgqueue_jobs', job_queue);
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION pgqueue.retry_failed_jobs(queue text DEFAULT NULL, job_type text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    retried integer;
    revived_queues text[];
BEGIN
    WITH revived AS (
        UPDATE pgqueue.jobs AS j
        SET status = 'pending', attempts = 0, run_at = now(), started_at = NULL,
            finished_at = NULL, result = NULL, worker_id = NULL
        WHERE j.status = 'failed'
          AND (retry_failed_jobs.queue IS NULL OR j.queue = retry_failed_jobs.queue)
          AND (retry_failed_jobs.job_type IS NULL OR j.job_type = retry_failed_jobs.job_type)
        RETURNING j.queue AS revived_queue
    )
    SELECT count(*), array_agg(DISTINCT revived_queue) INTO retried, revived_queues FROM revived;
    PERFORM pg_notify('pgqueue_jobs', q) FROM unnest(revived_queues) AS q;
    RETURN retried;
END
$$;

DROP FUNCTION pgqueue.unique_key_is_taken(text);
DROP FUNCTION pgqueue.release_expired_unique_keys(text[]);
DROP FUNCTION pgqueue.settle_dependents(bigint[]);

DROP TABLE pgqueue.schedules;
DROP TABLE pgqueue.queues;

DROP INDEX pgqueue.jobs_schedule_tick_idx;
DROP INDEX pgqueue.jobs_unique_key_idx;
DROP INDEX pgqueue.jobs_blocked_idx;
DROP INDEX pgqueue.jobs_claimable_idx;
CREATE INDEX jobs_claimable_idx ON pgqueue.jobs (queue, priority DESC, run_at, id)
    WHERE status = 'pending';

ALTER TABLE pgqueue.jobs
    DROP CONSTRAINT jobs_unique_for_check,
    DROP COLUMN unique_until,
    DROP COLUMN unique_for,
    DROP COLUMN has_dependents,
    DROP COLUMN run_anyway,
    DROP COLUMN blocked;
