-- pgqueue revision 0005: dependencies, unique jobs, queue pause and limits, cron schedules.
-- Every path that finishes a job (complete, fail, rescue, cancel, clear) becomes a function here,
-- so that releasing or cancelling its dependents happens in the same transaction, from Python
-- and from psql alike.

ALTER TABLE pgqueue.jobs
    -- A pending job with a parent not yet completed: not claimable, and not in the claim index.
    ADD COLUMN blocked      boolean NOT NULL DEFAULT false,
    -- Run once every parent has finished, whatever its outcome (else a failed or cancelled
    -- parent cancels this job).
    ADD COLUMN run_anyway   boolean NOT NULL DEFAULT false,
    -- Some job depends on this one: finishing it settles its dependents. Set when the first
    -- dependent is enqueued, so that jobs without any skip that work.
    ADD COLUMN has_dependents boolean NOT NULL DEFAULT false,
    -- How long unique_key stays taken after the job completes ...
    ADD COLUMN unique_for   interval,
    -- ... until then (set at completion; NULL once that hold has been let go).
    ADD COLUMN unique_until timestamptz,
    ADD CONSTRAINT jobs_unique_for_check CHECK (unique_for IS NULL OR unique_key IS NOT NULL);

DROP INDEX pgqueue.jobs_claimable_idx;
CREATE INDEX jobs_claimable_idx ON pgqueue.jobs (queue, priority DESC, run_at, id)
    WHERE status = 'pending' AND NOT blocked;
-- The dependents waiting on a job, found when it finishes.
CREATE INDEX jobs_blocked_idx ON pgqueue.jobs USING gin (depends_on)
    WHERE status = 'pending' AND blocked;
-- At most one live job per unique_key: pending, running, or completed within its unique_for.
CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND (status IN ('pending', 'running') OR unique_until IS NOT NULL);
-- One job per schedule tick, however many workers enqueue it.
CREATE UNIQUE INDEX jobs_schedule_tick_idx ON pgqueue.jobs (schedule_name, schedule_tick)
    WHERE schedule_name IS NOT NULL;

-- Per-queue state shared by every worker. A queue with no row is open and unlimited.
CREATE TABLE pgqueue.queues (
    name              text PRIMARY KEY,
    paused            boolean NOT NULL DEFAULT false,
    -- At most this many jobs of the queue running at once, cluster-wide.
    concurrency_limit integer,
    -- At most rate_limit jobs started per rate_period (windows aligned on the database clock).
    rate_limit        integer,
    rate_period       interval,
    -- The current rate window and how many jobs started in it.
    rate_window_start timestamptz,
    rate_window_count integer NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT queues_name_check CHECK (name ~ '^[A-Za-z0-9_.-]{1,63}$'),
    CONSTRAINT queues_concurrency_limit_check CHECK (concurrency_limit >= 1),
    CONSTRAINT queues_rate_check CHECK (
        (rate_limit IS NULL) = (rate_period IS NULL) AND rate_limit >= 1 AND rate_period > interval '0'
    )
);

-- Recurring jobs. Ticks are computed by the workers (a cron library), enqueued by
-- enqueue_schedule_ticks; jobs_schedule_tick_idx makes each tick one job.
CREATE TABLE pgqueue.schedules (
    name         text PRIMARY KEY,
    cron         text NOT NULL,
    timezone     text NOT NULL DEFAULT 'UTC',
    job_type     text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}',
    queue        text NOT NULL DEFAULT 'default',
    priority     smallint NOT NULL DEFAULT 0,
    max_attempts smallint,
    -- Ticks missed while no worker ran: enqueue the latest one, none, or all of them.
    missed       text NOT NULL DEFAULT 'latest',
    paused       boolean NOT NULL DEFAULT false,
    -- Declared with @schedule in code (workers keep the row in step) or added with add_schedule.
    in_code      boolean NOT NULL DEFAULT false,
    -- The newest tick enqueued or skipped; ticks come after it (or after created_at).
    last_tick    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_name_check CHECK (name ~ '^[A-Za-z0-9_.:-]{1,200}$'),
    CONSTRAINT schedules_missed_check CHECK (missed IN ('latest', 'none', 'all')),
    CONSTRAINT schedules_queue_check CHECK (queue ~ '^[A-Za-z0-9_.-]{1,63}$'),
    CONSTRAINT schedules_payload_check CHECK (jsonb_typeof(payload) = 'object')
);

-- Settle the dependents of jobs that just finished (or were deleted): a dependent whose parents
-- have all completed is released; one with a failed, cancelled or deleted parent is cancelled
-- (the reason names the parent), and so are its own dependents in turn, unless it runs anyway,
-- in which case it is released once every parent has finished.
CREATE FUNCTION pgqueue.settle_dependents(parent_ids bigint[]) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan  -- so that the dependents are found through jobs_blocked_idx
AS $$
DECLARE
    todo bigint[] := parent_ids;
    cancelled bigint[];
    child record;
    bad record;
    waiting boolean;
BEGIN
    WHILE cardinality(todo) > 0 LOOP
        cancelled := '{}';
        -- Locking each dependent serializes this with its other parents' transactions; the
        -- statements below then take a fresh snapshot, so whichever parent finishes last sees
        -- the others finished and releases it.
        FOR child IN
            SELECT j.id, j.queue, j.depends_on, j.run_anyway, j.has_dependents FROM pgqueue.jobs AS j
            WHERE j.status = 'pending' AND j.blocked AND j.depends_on && todo
            ORDER BY j.id
            FOR UPDATE
        LOOP
            SELECT d.id, coalesce(p.status::text, 'deleted') AS status INTO bad
            FROM unnest(child.depends_on) AS d(id)
            LEFT JOIN pgqueue.jobs AS p ON p.id = d.id
            WHERE p.id IS NULL OR p.status IN ('failed', 'cancelled')
            ORDER BY d.id LIMIT 1;
            IF bad.id IS NOT NULL AND NOT child.run_anyway THEN
                UPDATE pgqueue.jobs
                SET status = 'cancelled', blocked = false, finished_at = now(),
                    last_error = format('parent job %s %s', bad.id,
                        CASE bad.status WHEN 'failed' THEN 'failed'
                                        WHEN 'cancelled' THEN 'was cancelled'
                                        ELSE 'was deleted' END)
                WHERE id = child.id;
                IF child.has_dependents THEN
                    cancelled := cancelled || child.id;
                END IF;
                CONTINUE;
            END IF;
            SELECT EXISTS (
                SELECT FROM pgqueue.jobs AS p
                WHERE p.id = ANY(child.depends_on) AND p.status IN ('pending', 'running')
            ) INTO waiting;
            IF NOT waiting THEN
                UPDATE pgqueue.jobs SET blocked = false WHERE id = child.id;
                PERFORM pg_notify('pgqueue_jobs', child.queue);
            END IF;
        END LOOP;
        todo := cancelled;
    END LOOP;
END
$$;

-- Enqueue one job; returns its id, and whether it is an existing job that holds unique_key
-- (then nothing was inserted). Parents (depends_on) must exist: they are marked has_dependents,
-- which locks their rows until commit, so a parent cannot finish unseen in between.
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
            finished_at, last_error)
        VALUES (enqueue_job.job_type, enqueue_job.payload, enqueue_job.queue,
            coalesce(enqueue_job.run_at, now() + coalesce(enqueue_job.delay, interval '0')),
            enqueue_job.priority, enqueue_job.max_attempts, enqueue_job.retry_backoff,
            enqueue_job.unique_key, enqueue_job.unique_for, nullif(parents, '{}'),
            enqueue_job.run_anyway, is_blocked,
            CASE WHEN cancel_reason IS NULL THEN 'pending' ELSE 'cancelled' END::pgqueue.job_status,
            CASE WHEN cancel_reason IS NULL THEN NULL ELSE now() END, cancel_reason)
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

-- The SQL entry point of revisions 0001-0004, with the new options: returns the job's id (the
-- existing job's, when unique_key is taken).
DROP FUNCTION pgqueue.enqueue(text, jsonb, text, timestamptz, integer, integer, interval, interval);
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
    run_anyway    boolean DEFAULT false
) RETURNS bigint
LANGUAGE sql AS $$
    SELECT id FROM pgqueue.enqueue_job(job_type, payload, queue, run_at, priority, max_attempts,
        delay, retry_backoff, unique_key, unique_for, depends_on, run_anyway);
$$;

-- Claim up to max_jobs due jobs of these types from these queues for a worker: within a queue
-- highest priority first, then oldest run_at. Queue by queue, each with an equality on queue so
-- that the claim index returns rows in order and the LIMIT stops early (an index scan over
-- queue = ANY(...) cannot, and would sort every pending row); the queues are taken in random
-- order, so none starves. Paused queues are skipped. The rows of the limited queues are locked
-- first (in name order, so two claims never deadlock): claims in a limited queue take turns,
-- and each counts (in a snapshot taken after the lock) what the previous ones committed, so the
-- limit holds cluster-wide.
CREATE FUNCTION pgqueue.claim_jobs(queues text[], job_types text[], worker_id uuid, max_jobs integer)
RETURNS TABLE (id bigint, queue text, job_type text, payload text, attempts smallint,
               max_attempts smallint, retry_backoff interval, depends_on bigint[])
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
            j.retry_backoff, j.depends_on;
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

-- Wake the workers of the concurrency-limited queues among these: a slot has freed up.
CREATE FUNCTION pgqueue.notify_freed_slots(queues text[]) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('pgqueue_jobs', s.name) FROM pgqueue.queues AS s
    WHERE s.name = ANY(queues) AND s.concurrency_limit IS NOT NULL;
$$;

-- Record successful attempts, many per call. Fenced: only rows still running under this worker
-- and attempt change, so a completion that lost its claim writes nothing. Releases the
-- dependents and starts the unique_for hold. Returns the ids written.
CREATE FUNCTION pgqueue.complete_jobs(ids bigint[], attempts integer[], results jsonb[], worker_id uuid)
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
        FROM unnest(complete_jobs.ids, complete_jobs.attempts, complete_jobs.results)
            AS d(id, attempt, result)
        -- status compared as text: that keeps the planner on the primary key, off
        -- jobs_running_idx, whose entries for this worker (one per job it ran since the last
        -- vacuum) it would scan once per completed job when its statistics are stale.
        WHERE j.id = d.id AND j.attempts = d.attempt AND j.status::text = 'running'
          AND j.worker_id = complete_jobs.worker_id
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

-- Record a failed attempt (fenced like complete_jobs): back to pending after retry_delay when
-- attempts remain (max_attempts, else default_max_attempts) and the failure is not permanent,
-- else failed (the dead letter queue), which cancels its dependents. The error is appended to
-- the history (stamped with the database clock), which keeps the last 20 attempts. Returns the
-- new status, or NULL when this worker no longer held the job.
CREATE FUNCTION pgqueue.fail_job(job_id bigint, attempt integer, worker_id uuid, error jsonb,
    last_error text, retry_delay interval, permanent boolean, default_max_attempts integer)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    new_status pgqueue.job_status;
    job_queue text;
    is_parent boolean;
BEGIN
    UPDATE pgqueue.jobs AS j
    SET status = CASE WHEN retry.again THEN 'pending' ELSE 'failed' END::pgqueue.job_status,
        run_at = CASE WHEN retry.again THEN now() + retry_delay ELSE j.run_at END,
        finished_at = CASE WHEN retry.again THEN NULL ELSE now() END,
        worker_id = CASE WHEN retry.again THEN NULL ELSE j.worker_id END,
        last_error = fail_job.last_error,
        errors = jsonb_path_query_array(
            j.errors || jsonb_build_array(error || jsonb_build_object('at', now())),
            '$[last - 19 to last]')
    FROM (
        SELECT NOT permanent AND r.attempts < coalesce(r.max_attempts, default_max_attempts) AS again
        FROM pgqueue.jobs AS r WHERE r.id = job_id
    ) AS retry
    WHERE j.id = job_id AND j.attempts = attempt AND j.status::text = 'running'  -- as in complete_jobs
      AND j.worker_id = fail_job.worker_id
    RETURNING j.status, j.queue, j.has_dependents INTO new_status, job_queue, is_parent;
    IF new_status = 'failed' AND is_parent THEN
        PERFORM pgqueue.settle_dependents(ARRAY[job_id]);
    END IF;
    IF new_status IS NOT NULL THEN
        PERFORM pgqueue.notify_freed_slots(ARRAY[job_queue]);
    END IF;
    RETURN new_status::text;
END
$$;

-- Jobs running under a worker whose heartbeat is older than heartbeat_timeout, or whose row is
-- gone: back to pending with the attempt counted, or failed if it was the last one
-- (max_attempts, else default_max_attempts), so a job that kills its worker every time still
-- ends in the dead letter queue. Wakes the workers of the queues they return to. Returns
-- their ids.
CREATE FUNCTION pgqueue.rescue_expired_jobs(heartbeat_timeout interval, default_max_attempts integer)
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

-- Cancel a pending or running job. A running job is cancelled at once in the table (its
-- worker's later outcome is fenced out) and its worker is told on 'pgqueue_cancel' (payload: the
-- job id) so it stops the task. Its dependents are cancelled too. Returns whether the job was
-- cancelled.
CREATE OR REPLACE FUNCTION pgqueue.cancel_job(job_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    was_running boolean;
    is_parent boolean;
BEGIN
    UPDATE pgqueue.jobs AS j SET status = 'cancelled', blocked = false, finished_at = now()
    FROM (SELECT id, status = 'running' AS running FROM pgqueue.jobs
          WHERE id = job_id AND status IN ('pending', 'running') FOR UPDATE) AS before
    WHERE j.id = before.id
    RETURNING before.running, j.has_dependents INTO was_running, is_parent;
    IF was_running IS NULL THEN
        RETURN false;
    END IF;
    IF was_running THEN
        PERFORM pg_notify('pgqueue_cancel', job_id::text);
    END IF;
    IF is_parent THEN
        PERFORM pgqueue.settle_dependents(ARRAY[job_id]);
    END IF;
    RETURN true;
END
$$;

-- Let go of the keys among these whose completed holder's unique_for has run out, so that the
-- partial unique index (which cannot look at the clock) no longer counts them.
CREATE FUNCTION pgqueue.release_expired_unique_keys(keys text[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE pgqueue.jobs AS j SET unique_until = NULL
    WHERE j.unique_key = ANY(keys) AND j.status = 'completed' AND j.unique_until <= now();
$$;

-- Whether a live job (pending, running, or completed within its unique_for) holds this key.
CREATE FUNCTION pgqueue.unique_key_is_taken(key text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT key IS NOT NULL AND EXISTS (
        SELECT FROM pgqueue.jobs AS j
        WHERE j.unique_key = key
          AND (j.status IN ('pending', 'running') OR j.unique_until > now())
    );
$$;

-- Bring a failed or cancelled job back to pending with fresh attempts; its error history stays.
-- Not when another live job now holds its unique_key (that one does the same work).
CREATE OR REPLACE FUNCTION pgqueue.retry_job(job_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    job_queue text;
BEGIN
    PERFORM pgqueue.release_expired_unique_keys(ARRAY(
        SELECT j.unique_key FROM pgqueue.jobs AS j WHERE j.id = job_id AND j.unique_key IS NOT NULL));
    UPDATE pgqueue.jobs AS j
    SET status = 'pending', attempts = 0, run_at = now(), started_at = NULL, finished_at = NULL,
        result = NULL, worker_id = NULL
    WHERE j.id = job_id AND j.status IN ('failed', 'cancelled')
      AND NOT pgqueue.unique_key_is_taken(j.unique_key)
    RETURNING j.queue INTO job_queue;
    IF job_queue IS NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('pgqueue_jobs', job_queue);
    RETURN true;
END
$$;

-- Bring every failed job (of one queue and/or job type, when given) back to pending with fresh
-- attempts; the error history stays. Of several sharing a unique_key, only the newest, and none
-- while a live job holds the key. Returns how many.
CREATE OR REPLACE FUNCTION pgqueue.retry_failed_jobs(queue text DEFAULT NULL, job_type text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    retried integer;
    revived_queues text[];
BEGIN
    PERFORM pgqueue.release_expired_unique_keys(ARRAY(
        SELECT DISTINCT f.unique_key FROM pgqueue.jobs AS f
        WHERE f.status = 'failed' AND f.unique_key IS NOT NULL
          AND (retry_failed_jobs.queue IS NULL OR f.queue = retry_failed_jobs.queue)
          AND (retry_failed_jobs.job_type IS NULL OR f.job_type = retry_failed_jobs.job_type)));
    WITH chosen AS (
        SELECT DISTINCT ON (f.unique_key, CASE WHEN f.unique_key IS NULL THEN f.id END) f.id
        FROM pgqueue.jobs AS f
        WHERE f.status = 'failed'
          AND (retry_failed_jobs.queue IS NULL OR f.queue = retry_failed_jobs.queue)
          AND (retry_failed_jobs.job_type IS NULL OR f.job_type = retry_failed_jobs.job_type)
          AND NOT pgqueue.unique_key_is_taken(f.unique_key)
        ORDER BY f.unique_key, CASE WHEN f.unique_key IS NULL THEN f.id END, f.id DESC
    ), revived AS (
        UPDATE pgqueue.jobs AS j
        SET status = 'pending', attempts = 0, run_at = now(), started_at = NULL,
            finished_at = NULL, result = NULL, worker_id = NULL
        FROM chosen
        WHERE j.id = chosen.id
        RETURNING j.queue AS revived_queue
    )
    SELECT count(*), array_agg(DISTINCT revived_queue) INTO retried, revived_queues FROM revived;
    PERFORM pg_notify('pgqueue_jobs', q) FROM unnest(revived_queues) AS q;
    RETURN retried;
END
$$;

-- Delete the jobs of one status of one queue, or of all queues when queue is NULL; their
-- dependents are cancelled. Returns how many were deleted.
CREATE FUNCTION pgqueue.clear_jobs(status pgqueue.job_status, queue text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    deleted bigint;
    parents bigint[];
BEGIN
    WITH gone AS (
        DELETE FROM pgqueue.jobs AS j
        WHERE j.status = clear_jobs.status AND (clear_jobs.queue IS NULL OR j.queue = clear_jobs.queue)
        RETURNING j.id, j.has_dependents
    )
    SELECT count(*), array_agg(g.id) FILTER (WHERE g.has_dependents)
    INTO deleted, parents FROM gone AS g;
    IF parents IS NOT NULL THEN
        PERFORM pgqueue.settle_dependents(parents);
    END IF;
    RETURN deleted;
END
$$;

-- Enqueue a schedule's due ticks (one job each) and move its last_tick on to done_until, unless
-- it changed since it was read (updated_at), was paused or deleted, or another worker holds it
-- right now (that one enqueues the same ticks). Ticks at or before last_tick are skipped, and
-- jobs_schedule_tick_idx turns any duplicate into nothing. Returns the new jobs' ids.
CREATE FUNCTION pgqueue.enqueue_schedule_ticks(
    schedule_name text, seen_updated_at timestamptz, ticks timestamptz[], done_until timestamptz
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    s pgqueue.schedules;
    inserted integer;
BEGIN
    SELECT * INTO s FROM pgqueue.schedules AS r
    WHERE r.name = enqueue_schedule_ticks.schedule_name AND r.updated_at = seen_updated_at AND NOT r.paused
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    INSERT INTO pgqueue.jobs AS j (job_type, payload, queue, priority, max_attempts, run_at,
        schedule_name, schedule_tick)
    SELECT s.job_type, s.payload, s.queue, s.priority, s.max_attempts, t, s.name, t
    FROM unnest(ticks) AS t
    WHERE t > coalesce(s.last_tick, s.created_at)
    ORDER BY t
    ON CONFLICT (schedule_name, schedule_tick) WHERE schedule_name IS NOT NULL DO NOTHING
    RETURNING j.id;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    UPDATE pgqueue.schedules AS r SET last_tick = done_until
    WHERE r.name = s.name AND (r.last_tick IS NULL OR r.last_tick < done_until);
    IF inserted > 0 THEN
        PERFORM pg_notify('pgqueue_jobs', s.queue);
    END IF;
END
$$;

-- Counts by state per queue: 'pending' is now due and claimable, 'blocked' waits on parents.
CREATE OR REPLACE VIEW pgqueue.queue_stats AS
SELECT queue,
    count(*) FILTER (WHERE status = 'pending' AND NOT blocked AND run_at <= now()) AS pending,
    count(*) FILTER (WHERE status = 'pending' AND NOT blocked AND run_at > now()) AS scheduled,
    count(*) FILTER (WHERE status = 'running') AS running,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    now() - min(run_at) FILTER (WHERE status = 'pending' AND NOT blocked AND run_at <= now())
        AS oldest_pending_age,
    count(*) FILTER (WHERE status = 'completed' AND finished_at > now() - interval '1 minute')
        AS completed_last_minute,
    count(*) FILTER (WHERE status = 'pending' AND blocked) AS blocked
FROM pgqueue.jobs
GROUP BY queue;
