-- Reverts revision 0010: claim_jobs and queue_summary as 0007 declared them, next_run_at as
-- 0009 did (grants kept).
CREATE OR REPLACE FUNCTION pgqueue.claim_jobs(queues text[], job_types text[], worker_id uuid, max_jobs integer)
RETURNS TABLE (id bigint, queue text, job_type text, payload text, attempts smallint,
               max_attempts smallint, retry_backoff interval, depends_on bigint[],
               trace_context text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    target record;
    settings record;
    claimed integer := 0;
    taken integer;
    allowed integer;
    rate_window timestamptz;  -- set when the queue has a rate limit
    rate_used integer;
BEGIN
    -- The claim's commit does not wait for its WAL to reach disk (the worker's claim is its own
    -- transaction). Only a server crash can lose it, and then the job is pending again and runs
    -- again: at least once still holds. The job's completion is a durable commit, which flushes
    -- the claim with it, and its fence (worker and attempt) refuses an outcome for a lost claim.
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM FROM pgqueue.queues AS s
    WHERE s.name = ANY(claim_jobs.queues) AND NOT s.paused
      AND (s.concurrency_limit IS NOT NULL OR s.rate_limit IS NOT NULL)
    ORDER BY s.name
    FOR UPDATE;
    FOR target IN
        SELECT u.name, s.concurrency_limit IS NOT NULL OR s.rate_limit IS NOT NULL AS is_limited
        FROM unnest(claim_jobs.queues) AS u(name)
        LEFT JOIN pgqueue.queues AS s ON s.name = u.name
        WHERE NOT coalesce(s.paused, false)
        ORDER BY random()
    LOOP
        EXIT WHEN claimed >= max_jobs;
        allowed := max_jobs - claimed;
        rate_window := NULL;
        IF target.is_limited THEN
            SELECT s.* INTO settings FROM pgqueue.queues AS s  -- locked above
            WHERE s.name = target.name AND NOT s.paused;
            CONTINUE WHEN NOT FOUND;  -- paused meanwhile
            IF settings.concurrency_limit IS NOT NULL THEN
                allowed := least(allowed, settings.concurrency_limit - (
                    SELECT count(*) FROM pgqueue.jobs AS r
                    WHERE r.status = 'running' AND r.queue = settings.name)::integer);
            END IF;
            IF settings.rate_limit IS NOT NULL THEN
                -- The window holding now(), the started_at these jobs get, so the starts per
                -- window can be read back from the jobs; never a window older than the last one
                -- (a claim that waited on the lock across a window's end counts in the new one).
                rate_window := greatest(settings.rate_window_start,
                    to_timestamp(floor(extract(epoch FROM now())
                        / extract(epoch FROM settings.rate_period))
                        * extract(epoch FROM settings.rate_period)));
                rate_used := CASE WHEN settings.rate_window_start = rate_window
                                  THEN settings.rate_window_count ELSE 0 END;
                allowed := least(allowed, settings.rate_limit - rate_used);
            END IF;
            CONTINUE WHEN allowed <= 0;
        END IF;
        RETURN QUERY
        WITH claimable AS MATERIALIZED (  -- the LIMIT runs once, never re-evaluated per row
            SELECT j.id FROM pgqueue.jobs AS j
            WHERE j.status = 'pending' AND NOT j.blocked AND j.run_at <= now()
              AND j.queue = target.name AND j.job_type = ANY(claim_jobs.job_types)
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT allowed
            FOR UPDATE SKIP LOCKED  -- other workers skip the rows we lock instead of waiting
        )
        UPDATE pgqueue.jobs AS j
        SET status = 'running', attempts = j.attempts + 1, started_at = now(), finished_at = NULL,
            worker_id = claim_jobs.worker_id
        FROM claimable
        WHERE j.id = claimable.id
        RETURNING j.id, j.queue, j.job_type, j.payload::text, j.attempts, j.max_attempts,
            j.retry_backoff, j.depends_on, j.trace_context::text;
        GET DIAGNOSTICS taken = ROW_COUNT;
        claimed := claimed + taken;
        IF rate_window IS NOT NULL AND taken > 0 THEN
            UPDATE pgqueue.queues AS s
            SET rate_window_start = rate_window, rate_window_count = rate_used + taken
            WHERE s.name = settings.name;
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE VIEW pgqueue.queue_summary AS
WITH parts AS (
    SELECT queue, count(*) FILTER (WHERE run_at <= now()) AS pending,
        count(*) FILTER (WHERE run_at > now()) AS scheduled, 0 AS blocked, 0 AS running,
        0 AS failed, min(run_at) FILTER (WHERE run_at <= now()) AS oldest_due
    FROM pgqueue.jobs WHERE status = 'pending' AND NOT blocked  -- jobs_claimable_idx
    GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, count(*), 0, 0, NULL
    FROM pgqueue.jobs WHERE status = 'pending' AND blocked  -- jobs_waiting_idx
    GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, 0, count(*), 0, NULL
    FROM pgqueue.jobs WHERE status = 'running'  -- jobs_running_idx
    GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, 0, 0, count(*), NULL
    FROM pgqueue.jobs WHERE status = 'failed' AND finished_at IS NOT NULL  -- jobs_finished_idx
    GROUP BY queue
), counts AS (
    SELECT queue, sum(pending) AS pending, sum(scheduled) AS scheduled, sum(blocked) AS blocked,
        sum(running) AS running, sum(failed) AS failed, min(oldest_due) AS oldest_due
    FROM parts GROUP BY queue
)
SELECT coalesce(c.queue, s.name) AS queue, coalesce(c.pending, 0)::bigint AS pending,
    coalesce(c.scheduled, 0)::bigint AS scheduled, coalesce(c.blocked, 0)::bigint AS blocked,
    coalesce(c.running, 0)::bigint AS running, coalesce(c.failed, 0)::bigint AS failed,
    extract(epoch FROM now() - c.oldest_due)::float8 AS oldest_pending_seconds,
    coalesce(s.paused, false) AS paused, s.concurrency_limit, s.rate_limit, s.rate_period
FROM counts AS c
FULL JOIN pgqueue.queues AS s ON s.name = c.queue
ORDER BY 1;

DROP FUNCTION pgqueue.waiting_jobs(text, integer);
DROP FUNCTION pgqueue.estimated_rows(text);
DROP STATISTICS pgqueue.jobs_waiting_stats;
DROP INDEX pgqueue.jobs_claimable_by_type_idx;

CREATE OR REPLACE FUNCTION pgqueue.next_run_at(queues text[], job_types text[]) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    queue_name text;
    settings record;
    rate_opens_at timestamptz;
    level smallint;
    first_run_at timestamptz;
    earliest timestamptz;
BEGIN
    -- A loop over the array rather than a join with it: a statement taking the array is
    -- planned anew on every call (its generic plan guesses ten elements and looks dearer).
    FOREACH queue_name IN ARRAY next_run_at.queues LOOP
        SELECT s.paused, s.concurrency_limit, s.rate_limit, s.rate_window_count,
            s.rate_window_start, s.rate_period
        INTO settings FROM pgqueue.queues AS s WHERE s.name = queue_name;
        CONTINUE WHEN settings.paused;  -- NULL (no settings row): open
        CONTINUE WHEN settings.concurrency_limit <= (
            SELECT count(*) FROM pgqueue.jobs AS r
            WHERE r.status = 'running' AND r.queue = queue_name);
        rate_opens_at := CASE
            WHEN settings.rate_window_count >= settings.rate_limit
                 AND settings.rate_window_start + settings.rate_period > now()
            THEN settings.rate_window_start + settings.rate_period
        END;
        level := (SELECT j.priority FROM pgqueue.jobs AS j
                  WHERE j.status = 'pending' AND NOT j.blocked AND j.queue = queue_name
                  ORDER BY j.priority DESC LIMIT 1);
        WHILE level IS NOT NULL LOOP
            -- Rows of other job types are stepped over, in run_at order.
            first_run_at := (SELECT j.run_at FROM pgqueue.jobs AS j
                             WHERE j.status = 'pending' AND NOT j.blocked
                               AND j.queue = queue_name AND j.priority = level
                               AND j.job_type = ANY(next_run_at.job_types)
                             ORDER BY j.run_at LIMIT 1);
            IF first_run_at IS NOT NULL THEN
                earliest := least(earliest, greatest(first_run_at, rate_opens_at));
                IF earliest <= now() THEN
                    RETURN earliest;  -- due already: nothing can come sooner
                END IF;
            END IF;
            level := (SELECT j.priority FROM pgqueue.jobs AS j
                      WHERE j.status = 'pending' AND NOT j.blocked AND j.queue = queue_name
                        AND j.priority < level
                      ORDER BY j.priority DESC LIMIT 1);
        END LOOP;
    END LOOP;
    RETURN earliest;
END
$$;
