-- pgqueue revision 0010: the claim, the look-ahead and the counts read the due jobs only.

-- The jobs that can be claimed, by job type: for a worker whose own due jobs sit behind due
-- jobs of types it does not run (a type no worker runs yet, or whose workers are down), so that
-- it reads its own without walking past the others.
CREATE INDEX jobs_claimable_by_type_idx ON pgqueue.jobs (queue, priority DESC, job_type, run_at, id)
    WHERE status = 'pending' AND NOT blocked;

-- As in 0007 (same signature, so grants are kept), but each queue's jobs are claimed one
-- priority at a time. Within one priority, jobs_claimable_idx (queue, priority DESC, run_at, id)
-- holds the due jobs first, so "run_at <= now()" bounds the index scan and the claim stops at
-- the first job not yet due. Across priorities it was only a filter: a claim that wanted more
-- jobs than were due walked every job scheduled for later (all 300,000 of a backlog, 12 ms per
-- claim). The priorities are found by a skip scan, one index descent each.
CREATE OR REPLACE FUNCTION pgqueue.claim_jobs(queues text[], job_types text[], worker_id uuid, max_jobs integer)
RETURNS TABLE (id bigint, queue text, job_type text, payload text, attempts smallint,
               max_attempts smallint, retry_backoff interval, depends_on bigint[],
               trace_context text)
LANGUAGE plpgsql
-- Generic plans, planned once per session: PL/pgSQL otherwise plans a statement anew for its
-- parameters whenever its generic plan looks dearer, which a LIMIT it cannot know and the
-- statistics of a large backlog make it do on every call. Planning was then most of a claim's
-- cost: a worker beside 100,000 jobs of a paused queue ran 7,600-8,400 jobs/s, and
-- 10,200-11,400 with generic plans. tests/store/test_backlog.py checks these plans.
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    target record;
    settings record;
    claimed integer := 0;
    taken integer;  -- from the current queue
    got integer;
    allowed integer;
    level smallint;
    first_type text;
    first_run_at timestamptz;
    first_id bigint;
    ids bigint[];  -- the jobs to claim at this level
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
        taken := 0;
        -- The queue's first job in claim order: its priority is the level to start from, and
        -- when it is due, its type decides how to read that level's due jobs.
        SELECT c.priority, c.job_type, c.run_at, c.id
        INTO level, first_type, first_run_at, first_id
        FROM pgqueue.jobs AS c
        WHERE c.status = 'pending' AND NOT c.blocked AND c.queue = target.name
        ORDER BY c.priority DESC, c.run_at, c.id LIMIT 1;
        WHILE level IS NOT NULL LOOP
            IF first_run_at > now() THEN
                ids := NULL;  -- nothing due at this level
            ELSIF first_type = ANY(claim_jobs.job_types) THEN
                -- In claim order through jobs_claimable_idx, locking as it goes, from that
                -- first job on: the entries before it are of jobs claimed since the last
                -- vacuum, which the probe above stepped over already. (A job put back before
                -- it meanwhile waits for the next claim.)
                ids := ARRAY(
                    SELECT c.id FROM pgqueue.jobs AS c
                    WHERE c.status = 'pending' AND NOT c.blocked AND c.queue = target.name
                      AND c.priority = level AND c.run_at <= now()
                      AND (c.run_at, c.id) >= (first_run_at, first_id)
                      AND c.job_type = ANY(claim_jobs.job_types)
                    ORDER BY c.run_at, c.id
                    LIMIT allowed - taken
                    FOR UPDATE SKIP LOCKED);  -- other workers skip the rows we lock, never wait
            ELSE
                -- Due jobs of types this worker does not run come first: walking past them
                -- would cost every claim as many reads as there are of them. Instead, per type
                -- it runs, the first due jobs through jobs_claimable_by_type_idx, merged in
                -- claim order; then those not taken meanwhile are locked (a row claimed by
                -- another worker since fails the conditions, rechecked on its newest version).
                ids := ARRAY(
                    SELECT l.id FROM pgqueue.jobs AS l
                    WHERE l.id = ANY(ARRAY(
                        SELECT x.id FROM unnest(claim_jobs.job_types) AS t(name)
                        CROSS JOIN LATERAL (
                            SELECT c.id, c.run_at FROM pgqueue.jobs AS c
                            WHERE c.status = 'pending' AND NOT c.blocked
                              AND c.queue = target.name AND c.priority = level
                              AND c.job_type = t.name AND c.run_at <= now()
                            ORDER BY c.run_at, c.id
                            LIMIT allowed - taken) AS x
                        ORDER BY x.run_at, x.id
                        LIMIT allowed - taken))
                      AND l.status = 'pending' AND NOT l.blocked AND l.queue = target.name
                      AND l.priority = level AND l.run_at <= now()
                    FOR UPDATE SKIP LOCKED);
            END IF;
            got := 0;
            IF cardinality(ids) > 0 THEN
                RETURN QUERY
                UPDATE pgqueue.jobs AS j
                SET status = 'running', attempts = j.attempts + 1, started_at = now(),
                    finished_at = NULL, worker_id = claim_jobs.worker_id
                -- The ids as an array, not a join: the generic plan that a long-lived worker
                -- may settle on cannot know the LIMIT, guesses a thousand rows and would
                -- hash-join the whole table, where an array is looked up in the primary key.
                WHERE j.id = ANY(ids)
                RETURNING j.id, j.queue, j.job_type, j.payload::text, j.attempts, j.max_attempts,
                    j.retry_backoff, j.depends_on, j.trace_context::text;
                GET DIAGNOSTICS got = ROW_COUNT;
            END IF;
            taken := taken + got;
            EXIT WHEN taken >= allowed;
            SELECT c.priority, c.job_type, c.run_at, c.id
            INTO level, first_type, first_run_at, first_id
            FROM pgqueue.jobs AS c
            WHERE c.status = 'pending' AND NOT c.blocked AND c.queue = target.name
              AND c.priority < level
            ORDER BY c.priority DESC, c.run_at, c.id LIMIT 1;
        END LOOP;
        claimed := claimed + taken;
        IF rate_window IS NOT NULL AND taken > 0 THEN
            UPDATE pgqueue.queues AS s
            SET rate_window_start = rate_window, rate_window_count = rate_used + taken
            WHERE s.name = settings.name;
        END IF;
    END LOOP;
END
$$;

-- As in 0009 (same signature), but jobs of types these workers do not run no longer cost a
-- walk past them: when the first job of a priority is of another type, the first of each of
-- these types is read through jobs_claimable_by_type_idx instead.
CREATE OR REPLACE FUNCTION pgqueue.next_run_at(queues text[], job_types text[]) RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan  -- as claim_jobs
AS $$
DECLARE
    queue_name text;
    settings record;
    rate_opens_at timestamptz;
    level smallint;
    first_type text;
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
        -- The queue's first job in claim order: its priority, type and run_at.
        SELECT j.priority, j.job_type, j.run_at INTO level, first_type, first_run_at
        FROM pgqueue.jobs AS j
        WHERE j.status = 'pending' AND NOT j.blocked AND j.queue = queue_name
        ORDER BY j.priority DESC, j.run_at, j.id LIMIT 1;
        WHILE level IS NOT NULL LOOP
            IF NOT first_type = ANY(next_run_at.job_types) THEN
                -- Jobs of types these workers do not run come first: the first of each type
                -- they run instead, one descent each, not a walk past the others.
                first_run_at := (
                    SELECT min(x.run_at) FROM unnest(next_run_at.job_types) AS t(name)
                    CROSS JOIN LATERAL (
                        SELECT j.run_at FROM pgqueue.jobs AS j
                        WHERE j.status = 'pending' AND NOT j.blocked AND j.queue = queue_name
                          AND j.priority = level AND j.job_type = t.name
                        ORDER BY j.run_at LIMIT 1) AS x);
            END IF;
            IF first_run_at IS NOT NULL THEN
                earliest := least(earliest, greatest(first_run_at, rate_opens_at));
                IF earliest <= now() THEN
                    RETURN earliest;  -- due already: nothing can come sooner
                END IF;
            END IF;
            SELECT j.priority, j.job_type, j.run_at INTO level, first_type, first_run_at
            FROM pgqueue.jobs AS j
            WHERE j.status = 'pending' AND NOT j.blocked AND j.queue = queue_name
              AND j.priority < level
            ORDER BY j.priority DESC, j.run_at, j.id LIMIT 1;
        END LOOP;
    END LOOP;
    RETURN earliest;
END
$$;

-- Joint statistics of the columns that say whether a job waits, so the planner's estimate of
-- one queue's waiting jobs is close (within a few per cent, as of the last ANALYZE) even when
-- the queue's finished history outnumbers them: the estimates waiting_jobs gives past `exact`.
CREATE STATISTICS pgqueue.jobs_waiting_stats (mcv) ON queue, status, blocked FROM pgqueue.jobs;

-- The planner's estimate of the rows a query returns, without running it.
CREATE FUNCTION pgqueue.estimated_rows(query text) RETURNS bigint
LANGUAGE plpgsql AS $$  -- volatile: PostgreSQL refuses EXPLAIN in a stable function
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
    RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::bigint;
END
$$;

-- One queue's waiting jobs: pending and due, pending and scheduled for later, blocked on parents,
-- and the oldest due job's run_at. Each count is exact up to `exact` and estimated above it
-- (`estimated` is then true), so the cost is bounded however large a backlog grows: the jobs are
-- read through jobs_claimable_idx one priority at a time (due ones first within each, as the
-- claim reads them) and through jobs_waiting_idx, never more than `exact` + 1 entries per count.
-- Above `exact`, the planner's statistics give the queue's waiting jobs; the count still exact
-- is subtracted from them, so only the larger part is an estimate.
CREATE FUNCTION pgqueue.waiting_jobs(queue_name text, exact integer DEFAULT 10000)
RETURNS TABLE (pending bigint, scheduled bigint, blocked bigint, oldest_due timestamptz,
               estimated boolean)
LANGUAGE plpgsql
-- Each count stops after `exact` + 1 index entries. With a LIMIT, the planner would rather read
-- the table (or every matching row, through a bitmap) in the hope of meeting enough rows early:
-- 10,000 due jobs of a paused queue cost 9,500 buffers that way, 60 through the index.
SET enable_seqscan = off SET enable_bitmapscan = off
AS $$  -- volatile, as estimated_rows is
DECLARE
    level smallint;
    first_run_at timestamptz;
    waiting bigint;
    filter text := format('queue = %L AND status = %L AND ', queue_name, 'pending');
BEGIN
    pending := 0;
    scheduled := 0;
    level := (SELECT j.priority FROM pgqueue.jobs AS j
              WHERE j.status = 'pending' AND NOT j.blocked AND j.queue = queue_name
              ORDER BY j.priority DESC LIMIT 1);
    WHILE level IS NOT NULL LOOP
        first_run_at := (SELECT j.run_at FROM pgqueue.jobs AS j
                         WHERE j.status = 'pending' AND NOT j.blocked AND j.queue = queue_name
                           AND j.priority = level
                         ORDER BY j.run_at LIMIT 1);
        IF first_run_at <= now() THEN
            oldest_due := least(oldest_due, first_run_at);
        END IF;
        pending := pending + (SELECT count(*) FROM (
            SELECT FROM pgqueue.jobs AS j
            WHERE j.status = 'pending' AND NOT j.blocked AND j.queue = queue_name
              AND j.priority = level AND j.run_at <= now()
            LIMIT greatest(exact + 1 - pending, 0)) AS due);
        scheduled := scheduled + (SELECT count(*) FROM (
            SELECT FROM pgqueue.jobs AS j
            WHERE j.status = 'pending' AND NOT j.blocked AND j.queue = queue_name
              AND j.priority = level AND j.run_at > now()
            LIMIT greatest(exact + 1 - scheduled, 0)) AS later);
        level := (SELECT j.priority FROM pgqueue.jobs AS j
                  WHERE j.status = 'pending' AND NOT j.blocked AND j.queue = queue_name
                    AND j.priority < level
                  ORDER BY j.priority DESC LIMIT 1);
    END LOOP;
    blocked := (SELECT count(*) FROM (
        SELECT FROM pgqueue.jobs AS j
        WHERE j.status = 'pending' AND j.blocked AND j.queue = queue_name
        LIMIT exact + 1) AS waiting_on_parents);
    estimated := pending > exact OR scheduled > exact OR blocked > exact;
    IF pending > exact OR scheduled > exact THEN
        waiting := pgqueue.estimated_rows(
            'SELECT FROM pgqueue.jobs WHERE ' || filter || 'NOT blocked');
        IF scheduled <= exact THEN
            pending := greatest(pending, waiting - scheduled);
        ELSIF pending <= exact THEN
            scheduled := greatest(scheduled, waiting - pending);
        ELSE  -- both past `exact`: the statistics split them, though roughly
            scheduled := greatest(scheduled, least(waiting - pending, pgqueue.estimated_rows(
                'SELECT FROM pgqueue.jobs WHERE ' || filter || 'NOT blocked AND run_at > now()')));
            pending := greatest(pending, waiting - scheduled);
        END IF;
    END IF;
    IF blocked > exact THEN
        blocked := greatest(blocked, pgqueue.estimated_rows(
            'SELECT FROM pgqueue.jobs WHERE ' || filter || 'blocked'));
    END IF;
    RETURN NEXT;
END
$$;

-- As in 0007, with the waiting jobs counted by waiting_jobs: exact up to 10,000 per count and
-- estimated above, where 0007 counted every pending job at every read. The queues with waiting
-- jobs are found by skip scans, one index descent per queue.
CREATE OR REPLACE VIEW pgqueue.queue_summary AS
WITH RECURSIVE open_queues(queue) AS (  -- jobs_claimable_idx
    (SELECT j.queue FROM pgqueue.jobs AS j
     WHERE j.status = 'pending' AND NOT j.blocked ORDER BY j.queue LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue FROM pgqueue.jobs AS j
            WHERE j.status = 'pending' AND NOT j.blocked AND j.queue > o.queue
            ORDER BY j.queue LIMIT 1)
    FROM open_queues AS o WHERE o.queue IS NOT NULL
), blocked_queues(queue) AS (  -- jobs_waiting_idx
    (SELECT j.queue FROM pgqueue.jobs AS j
     WHERE j.status = 'pending' AND j.blocked ORDER BY j.queue LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue FROM pgqueue.jobs AS j
            WHERE j.status = 'pending' AND j.blocked AND j.queue > b.queue
            ORDER BY j.queue LIMIT 1)
    FROM blocked_queues AS b WHERE b.queue IS NOT NULL
), running AS (
    SELECT queue, count(*) AS running
    FROM pgqueue.jobs WHERE status = 'running'  -- jobs_running_idx
    GROUP BY queue
), failed AS (
    SELECT queue, count(*) AS failed
    FROM pgqueue.jobs WHERE status = 'failed' AND finished_at IS NOT NULL  -- jobs_finished_idx
    GROUP BY queue
), names AS (
    SELECT queue FROM open_queues WHERE queue IS NOT NULL
    UNION SELECT queue FROM blocked_queues WHERE queue IS NOT NULL
    UNION SELECT queue FROM running
    UNION SELECT queue FROM failed
    UNION SELECT name FROM pgqueue.queues
)
SELECT n.queue, w.pending, w.scheduled, w.blocked, coalesce(r.running, 0)::bigint AS running,
    coalesce(f.failed, 0)::bigint AS failed,
    extract(epoch FROM now() - w.oldest_due)::float8 AS oldest_pending_seconds,
    coalesce(s.paused, false) AS paused, s.concurrency_limit, s.rate_limit, s.rate_period
FROM names AS n
CROSS JOIN LATERAL pgqueue.waiting_jobs(n.queue) AS w
LEFT JOIN running AS r ON r.queue = n.queue
LEFT JOIN failed AS f ON f.queue = n.queue
LEFT JOIN pgqueue.queues AS s ON s.name = n.queue
ORDER BY 1;
