-- Reverts revision 0002. Jobs that relied on the worker's default get the old default of 4.
DROP FUNCTION pgqueue.retry_failed_jobs(text, text);

CREATE OR REPLACE FUNCTION pgqueue.cancel_job(job_id bigint) RETURNS boolean
LANGUAGE sql AS $$
    WITH cancelled AS (
        UPDATE pgqueue.jobs SET status = 'cancelled', finished_at = now()
        WHERE id = job_id AND status = 'pending'
        RETURNING id
    )
    SELECT EXISTS (SELECT FROM cancelled);
$$;

CREATE OR REPLACE FUNCTION pgqueue.enqueue(
    job_type      text,
    payload       jsonb DEFAULT '{}',
    queue         text DEFAULT 'default',
    run_at        timestamptz DEFAULT NULL,
    priority      integer DEFAULT 0,
    max_attempts  integer DEFAULT 4,
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

UPDATE pgqueue.jobs SET max_attempts = 4 WHERE max_attempts IS NULL;
ALTER TABLE pgqueue.jobs ALTER COLUMN max_attempts SET DEFAULT 4;
ALTER TABLE pgqueue.jobs ALTER COLUMN max_attempts SET NOT NULL;
