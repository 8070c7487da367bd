-- Reverts revision 0001. The schema itself stays: alembic's version table lives in it.
DROP FUNCTION pgqueue.retry_job(bigint);
DROP FUNCTION pgqueue.cancel_job(bigint);
DROP FUNCTION pgqueue.enqueue_batch(text[], jsonb[], text[], timestamptz[], interval[], integer[], integer[], interval[]);
DROP FUNCTION pgqueue.enqueue(text, jsonb, text, timestamptz, integer, integer, interval, interval);
DROP TABLE pgqueue.jobs;
DROP TABLE pgqueue.workers;
DROP TYPE pgqueue.job_status;
