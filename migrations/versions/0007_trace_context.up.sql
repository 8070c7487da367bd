-- pgqueue revision 0007: the trace context of the request that enqueued a job, kept in its row
-- so that the job's execution joins that trace; completions lock their rows in id order
-- themselves, whatever order their caller passes; the queue_summary view.

-- W3C Trace Context headers as the enqueuer's propagator wrote them, e.g. {"traceparent": "00-…",
-- "tracestate": "…"}; NULL when the enqueuer was not tracing. Nullable and without a default:
-- adding it changes the catalog only (no rewrite), and older workers ignore it. The check is
-- NOT VALID because every existing row is NULL: nothing to check, so the table is not read
-- under the lock; new rows are checked all the same.
ALTER TABLE pgqueue.jobs
    ADD COLUMN trace_context jsonb,
    ADD CONSTRAINT jobs_trace_context_check CHECK (jsonb_typeof(trace_context) = 'object') NOT VALID;

-- Dropping these functions to create them anew (their signatures or results change) would
-- reset what an operator granted on them (REVOKE EXECUTE FROM PUBLIC, GRANT EXECUTE TO the
-- application's role, ...): their grants are kept here and given to the new ones at the end.
CREATE TEMPORARY TABLE pgqueue_kept_grants AS
SELECT p.proname, a.grantee, a.privilege_type, a.is_grantable
FROM pg_proc AS p
CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
WHERE p.pronamespace = 'pgqueue'::regnamespace
  AND p.proname IN ('enqueue', 'enqueue_job', 'enqueue_batch', 'claim_jobs')
  AND a.grantee <> p.proowner;

-- The enqueue functions take it as a last parameter with a default, so every call written for
-- 0006 (named or positional) still works. A new parameter makes a new signature: the old one is
-- dropped, or a call that leaves trace_context out would match both.
DROP FUNCTION pgqueue.enqueue(text, jsonb, text, timestamptz, integer, integer, interval, interval,
    text, interval, bigint[], boolean);
DROP FUNCTION pgqueue.enqueue_job(text, jsonb, text, timestamptz, integer, integer, interval,
    interval, text, interval, bigint[], boolean);
DROP FUNCTION pgqueue.enqueue_batch(text[], jsonb[], text[], timestamptz[], interval[], integer[],
    integer[], interval[]);

-- As in 0005, storing trace_context.
CREATE FUNCTION pgqueue.enqueue_job(
    job_type      text,
    payload       jsonb DEFAULT '{}',
    queue         text DEFAULT 'default',
    run_at        timestamptz DEFAULT NULL,
    priority      integer DEFAULT 0,
    max_attempts  integer DEFAULT NULL,
    delay         interval DEFAULT NULL,
    retry_backoff interval DEFAULT NULL,
    unique_key    text DEFAULT NULL,
    unique_for    interval DEFAULT NULL,
    depends_on    bigint[] DEFAULT NULL,
    run_anyway    boolean DEFAULT false,
    trace_context jsonb DEFAULT NULL,
    OUT id        bigint,
    OUT existing  boolean
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    parents bigint[] := ARRAY(SELECT DISTINCT p FROM unnest(enqueue_job.depends_on) AS p ORDER BY p);
    found_parents bigint[];
    is_blocked boolean := false;
    cancel_reason text;
    holder record;
BEGIN
    IF enqueue_job.run_at IS NOT NULL AND enqueue_job.delay IS NOT NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: give run_at or delay, not both' USING ERRCODE = '22023';
    END IF;
    IF enqueue_job.delay < interval '0' THEN
        RAISE EXCEPTION 'pgqueue.enqueue: delay % is negative', enqueue_job.delay USING ERRCODE = '22023';
    END IF;
    IF enqueue_job.unique_for IS NOT NULL AND enqueue_job.unique_key IS NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: unique_for needs a unique_key' USING ERRCODE = '22023';
    END IF;
    IF enqueue_job.unique_for < interval '0' THEN
        RAISE EXCEPTION 'pgqueue.enqueue: unique_for % is negative', enqueue_job.unique_for
            USING ERRCODE = '22023';
    END IF;
    IF cardinality(parents) > 0 THEN
        -- Marking a parent waits for a transaction finishing it and then reads the row as it
        -- committed; and a parent's finishing transaction that comes later waits for ours, then
        -- sees has_dependents and settles this job. Locked in id order: no deadlock between two
        -- such enqueues.
        WITH marked AS (
            UPDATE pgqueue.jobs AS j SET has_dependents = true
            FROM (SELECT l.id FROM pgqueue.jobs AS l WHERE l.id = ANY(parents)
                  ORDER BY l.id FOR NO KEY UPDATE) AS locked
            WHERE j.id = locked.id
            RETURNING j.id, j.status
        )
        SELECT array_agg(p.id),
            bool_or(p.status IN ('pending', 'running')),
            (array_agg(format('parent job %s %s', p.id,
                CASE p.status WHEN 'failed' THEN 'failed' ELSE 'was cancelled' END) ORDER BY p.id)
                FILTER (WHERE p.status IN ('failed', 'cancelled')))[1]
        INTO found_parents, is_blocked, cancel_reason
        FROM marked AS p;
        IF cardinality(found_parents) IS DISTINCT FROM cardinality(parents) THEN
            RAISE EXCEPTION 'pgqueue.enqueue: parent job % does not exist',
                (SELECT min(p) FROM unnest(parents) AS p WHERE p <> ALL(coalesce(found_parents, '{}')))
                USING ERRCODE = '23503';
        END IF;
        IF enqueue_job.run_anyway THEN
            cancel_reason := NULL;
        ELSIF cancel_reason IS NOT NULL THEN
            is_blocked := false;
        END IF;
    END IF;
    FOR attempt IN 1..10 LOOP
        IF enqueue_job.unique_key IS NOT NULL THEN
            -- A live job holding the key is the answer (not locked: a duplicate enqueue must not
            -- hold the original up); a completed one whose unique_for has run out lets go of it.
            -- A holder not yet committed is met by ON CONFLICT below, which waits for it.
            SELECT j.id, j.status = 'completed' AND j.unique_until <= now() AS expired
            INTO holder
            FROM pgqueue.jobs AS j
            WHERE j.unique_key = enqueue_job.unique_key
              AND (j.status IN ('pending', 'running') OR j.unique_until IS NOT NULL);
            IF holder.id IS NOT NULL AND NOT holder.expired THEN
                enqueue_job.id := holder.id;
                existing := true;
                RETURN;
            END IF;
            IF holder.id IS NOT NULL THEN
                UPDATE pgqueue.jobs AS j SET unique_until = NULL
                WHERE j.id = holder.id AND j.unique_until <= now();
            END IF;
        END IF;
        -- A row inserted cancelled (a parent failed) holds no key, so conflicts with nothing.
        INSERT INTO pgqueue.jobs AS j (job_type, payload, queue, run_at, priority, max_attempts,
            retry_backoff, unique_key, unique_for, depends_on, run_anyway, blocked, status,
            finished_at, last_error, trace_context)
        VALUES (enqueue_job.job_type, enqueue_job.payload, enqueue_job.queue,
            coalesce(enqueue_job.run_at, now() + coalesce(enqueue_job.delay, interval '0')),
            enqueue_job.priority, enqueue_job.max_attempts, enqueue_job.retry_backoff,
            enqueue_job.unique_key, enqueue_job.unique_for, nullif(parents, '{}'),
            enqueue_job.run_anyway, is_blocked,
            CASE WHEN cancel_reason IS NULL THEN 'pending' ELSE 'cancelled' END::pgqueue.job_status,
            CASE WHEN cancel_reason IS NULL THEN NULL ELSE now() END, cancel_reason,
            enqueue_job.trace_context)
        ON CONFLICT (unique_key)
            WHERE unique_key IS NOT NULL AND (status IN ('pending', 'running') OR unique_until IS NOT NULL)
            DO NOTHING
        RETURNING j.id INTO enqueue_job.id;
        IF enqueue_job.id IS NOT NULL THEN
            existing := false;
            IF NOT is_blocked AND cancel_reason IS NULL THEN
                PERFORM pg_notify('pgqueue_jobs', enqueue_job.queue);
            END IF;
            RETURN;
        END IF;
        -- Another enqueue took the key between our look and our insert: look again.
    END LOOP;
    RAISE EXCEPTION 'pgqueue.enqueue: unique_key % kept changing hands', enqueue_job.unique_key
        USING ERRCODE = '40001';
END
$$;

-- As in 0005, passing trace_context on.
CREATE FUNCTION pgqueue.enqueue(
    job_type      text,
    payload       jsonb DEFAULT '{}',
    queue         text DEFAULT 'default',
    run_at        timestamptz DEFAULT NULL,
    priority      integer DEFAULT 0,
    max_attempts  integer DEFAULT NULL,
    delay         interval DEFAULT NULL,
    retry_backoff interval DEFAULT NULL,
    unique_key    text DEFAULT NULL,
    unique_for    interval DEFAULT NULL,
    depends_on    bigint[] DEFAULT NULL,
    run_anyway    boolean DEFAULT false,
    trace_context jsonb DEFAULT NULL
) RETURNS bigint
LANGUAGE sql AS $$
    SELECT id FROM pgqueue.enqueue_job(job_type, payload, queue, run_at, priority, max_attempts,
        delay, retry_backoff, unique_key, unique_for, depends_on, run_anyway, trace_context);
$$;

-- As in 0001; trace_context is that of the whole batch, stored in each of its rows.
CREATE FUNCTION pgqueue.enqueue_batch(
    job_types      text[],
    payloads       jsonb[],
    queues         text[],
    run_ats        timestamptz[],
    delays         interval[],
    priorities     integer[],
    max_attempts   integer[],
    retry_backoffs interval[],
    trace_context  jsonb DEFAULT NULL
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM unnest(delays) AS d WHERE d < interval '0') THEN
        RAISE EXCEPTION 'pgqueue.enqueue_batch: a delay is negative' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH inserted AS (
        INSERT INTO pgqueue.jobs (job_type, payload, queue, run_at, priority, max_attempts, retry_backoff,
            trace_context)
        SELECT b.job_type, b.payload, b.queue, coalesce(b.run_at, now() + coalesce(b.delay, interval '0')),
               b.priority, b.max_attempts, b.retry_backoff, enqueue_batch.trace_context
        FROM unnest(job_types, payloads, queues, run_ats, delays, priorities, max_attempts, retry_backoffs)
            WITH ORDINALITY AS b(job_type, payload, queue, run_at, delay, priority, max_attempts, retry_backoff, ord)
        ORDER BY b.ord  -- identity values follow insertion order, so ids come back in input order
        RETURNING id
    )
    SELECT id FROM inserted ORDER BY id;
    PERFORM pg_notify('pgqueue_jobs', q) FROM (SELECT DISTINCT unnest(queues)) AS d(q);
END
$$;

-- As in 0006, also returning each job's trace_context (a new result column: dropped and
-- created again, which CREATE OR REPLACE cannot do).
DROP FUNCTION pgqueue.claim_jobs(text[], text[], uuid, integer);
CREATE FUNCTION pgqueue.claim_jobs(queues text[], job_types text[], worker_id uuid, max_jobs integer)
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

-- As in 0005, locking its rows in id order itself, whatever order the caller gives (pgqueue's
-- Python sorted the ids, which did not decide the order: the plan did). The second lock of each
-- row costs about 1.3 us per completed job.
CREATE OR REPLACE FUNCTION pgqueue.complete_jobs(ids bigint[], attempts integer[], results jsonb[], worker_id uuid)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    done bigint[];
    done_queues text[];
    parents bigint[];
BEGIN
    WITH updated AS (
        UPDATE pgqueue.jobs AS j
        SET status = 'completed', finished_at = now(), result = d.result,
            unique_until = now() + j.unique_for
        FROM (
            -- Locked first, in id order (LockRows runs above the sort), as enqueue_job locks a
            -- new job's parents and settle_dependents the dependents: transactions that lock
            -- some of the same rows take them in the same order, so none waits on another in a
            -- cycle (a deadlock). Sorting the ids alone would not do: on a small table the
            -- planner scans jobs first, and the UPDATE locks rows in their physical order.
            SELECT l.id, d.result
            FROM unnest(complete_jobs.ids, complete_jobs.attempts, complete_jobs.results)
                AS d(id, attempt, result)
            JOIN pgqueue.jobs AS l ON l.id = d.id
            -- status compared as text: that keeps the planner on the primary key, off
            -- jobs_running_idx, whose entries for this worker (one per job it ran since the
            -- last vacuum) it would scan once per completed job when its statistics are stale.
            WHERE l.attempts = d.attempt AND l.status::text = 'running'
              AND l.worker_id = complete_jobs.worker_id
            ORDER BY l.id
            FOR NO KEY UPDATE OF l
        ) AS d
        WHERE j.id = d.id
        RETURNING j.id, j.queue, j.has_dependents
    )
    SELECT array_agg(u.id), array_agg(DISTINCT u.queue),
        array_agg(u.id) FILTER (WHERE u.has_dependents)
    INTO done, done_queues, parents FROM updated AS u;
    IF done IS NULL THEN
        RETURN;
    END IF;
    IF parents IS NOT NULL THEN
        PERFORM pgqueue.settle_dependents(parents);
    END IF;
    PERFORM pgqueue.notify_freed_slots(done_queues);
    RETURN QUERY SELECT unnest(done);
END
$$;

-- The blocked jobs by queue, for queue_summary: jobs_blocked_idx (GIN, on depends_on) answers
-- "who waits on this job", but the planner will not walk it to count a queue's blocked jobs.
-- Partial, so it holds only jobs that wait on parents and costs other jobs nothing to write.
CREATE INDEX jobs_waiting_idx ON pgqueue.jobs (queue) WHERE status = 'pending' AND blocked;

-- One row per queue with unfinished or failed jobs, or settings: what waits, runs and died, and
-- the oldest due job's wait. Each part reads one partial index, so the cost follows the jobs
-- not yet finished (and the failed), never the finished history that queue_stats counts.
CREATE VIEW pgqueue.queue_summary AS
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

-- The grants kept at the start, given to the functions created anew.
DO $$
DECLARE
    f record;
    g record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS signature, p.proname FROM pg_proc AS p
             WHERE p.pronamespace = 'pgqueue'::regnamespace
               AND p.proname IN ('enqueue', 'enqueue_job', 'enqueue_batch', 'claim_jobs') LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.signature);
        FOR g IN SELECT DISTINCT k.grantee, k.is_grantable FROM pgqueue_kept_grants AS k
                 WHERE k.proname = f.proname AND k.privilege_type = 'EXECUTE' LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', f.signature,
                CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END LOOP;
END
$$;
DROP TABLE pgqueue_kept_grants;
