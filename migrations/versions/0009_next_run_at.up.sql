-- pgqueue revision 0009: the idle worker's look-ahead, bounded by index descents.

-- When the earliest job of these queues and job types can be claimed: its run_at, or the end
-- of its queue's exhausted rate window if later; NULL when none can. Paused queues, and queues
-- at their concurrency limit (a finishing job there sends a NOTIFY), do not count. It reads
-- jobs_claimable_idx only: per open queue, its priorities one descent each (a skip scan), and
-- per priority the first run_at of these types, stopping at the first job already due. So jobs
-- scheduled for later, or pending in a paused queue, cost nothing however many there are. Each
-- statement is a simple one whose plan the function keeps, instead of one large query planned
-- anew for every call.
CREATE FUNCTION pgqueue.next_run_at(queues text[], job_types text[]) RETURNS timestamptz
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
