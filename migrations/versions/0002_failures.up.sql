-- pgqueue revision 0002: retry policy from the worker, cancelling running jobs, bulk retry.

-- NULL max_attempts: nothing more specific was given, so the worker's default applies.
ALTER TABLE pgqueue.jobs ALTER COLUMN max_attempts DROP NOT NULL;
ALTER TABLE pgqueue.jobs ALTER COLUMN max_attempts DROP DEFAULT;

CREATE OR REPLACE FUNCTION pgqueue.enqueue(
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

-- Cancel a pending or running job. A running job is cancelled at once in the table (its
-- worker's later outcome is fenced out) and its worker is told on 'pgqueue_cancel' (payload: the
-- job id) so it stops the task. Returns whether the job was cancelled.
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

-- Bring every failed job (of one queue and/or job type, when given) back to pending with fresh
-- attempts; the error history stays. Returns how many.
CREATE FUNCTION pgqueue.retry_failed_jobs(queue text DEFAULT NULL, job_type text DEFAULT NULL)
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
