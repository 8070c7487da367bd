-- pgqueue revision 0003: reporting views, stable across versions (columns are only ever added).

-- Finished jobs by status and time: pruning (one status older than its retention), the dead
-- letter queue, throughput and durations. Status leads, so pruning one status never wades
-- through the rows of another that are kept longer.
CREATE INDEX jobs_finished_idx ON pgqueue.jobs (status, finished_at)
    WHERE finished_at IS NOT NULL;

-- One row per queue: counts by state, the oldest due job's wait, and the last minute's work.
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

-- The dead letter queue: failed jobs, newest failure first.
CREATE VIEW pgqueue.failed_jobs AS
SELECT id, queue, job_type, attempts, max_attempts, last_error, finished_at AS failed_at,
    created_at, payload, errors
FROM pgqueue.jobs
WHERE status = 'failed';

-- Jobs finished per minute and queue over the last 24 hours.
CREATE VIEW pgqueue.throughput_per_minute AS
SELECT date_trunc('minute', finished_at) AS minute, queue,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled
FROM pgqueue.jobs
WHERE status IN ('completed', 'failed', 'cancelled')  -- the finished ones: lets the index serve
  AND finished_at > now() - interval '24 hours'
GROUP BY 1, 2;

-- How long completed jobs ran, per job type, over the last 24 hours.
CREATE VIEW pgqueue.job_durations AS
SELECT job_type, count(*) AS completed,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY finished_at - started_at) AS p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY finished_at - started_at) AS p95,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY finished_at - started_at) AS p99,
    max(finished_at - started_at) AS max
FROM pgqueue.jobs
WHERE status = 'completed' AND finished_at > now() - interval '24 hours'
GROUP BY job_type;
