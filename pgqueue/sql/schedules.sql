-- name: save_schedule
-- Create a schedule, or update it in place (its paused state and ticks kept; updated_at moves
-- only when something changed). Returns nothing when a schedule of that name is of the other
-- kind ($10: declared in code, or added with add_schedule).
-- params: name text, cron text, timezone text, job_type text, payload text, queue text, priority int, max_attempts int, missed text, in_code bool
INSERT INTO pgqueue.schedules AS s
    (name, cron, timezone, job_type, payload, queue, priority, max_attempts, missed, in_code)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10)
ON CONFLICT (name) DO UPDATE
SET cron = excluded.cron, timezone = excluded.timezone, job_type = excluded.job_type,
    payload = excluded.payload, queue = excluded.queue, priority = excluded.priority,
    max_attempts = excluded.max_attempts, missed = excluded.missed,
    updated_at = CASE
        WHEN (s.cron, s.timezone, s.job_type, s.payload, s.queue, s.priority, s.max_attempts, s.missed)
            IS DISTINCT FROM (excluded.cron, excluded.timezone, excluded.job_type, excluded.payload,
                              excluded.queue, excluded.priority, excluded.max_attempts, excluded.missed)
        THEN now() ELSE s.updated_at END
WHERE s.in_code = excluded.in_code
RETURNING s.name;

-- name: list_schedules
-- Every schedule, by name, with the database clock to compute the next tick from.
-- params:
SELECT name, cron, timezone, job_type, payload::text AS payload, queue, priority, max_attempts,
    missed, paused, in_code, last_tick, created_at, updated_at, now() AS db_now
FROM pgqueue.schedules
ORDER BY name;

-- name: set_schedule_paused
-- Pause or resume a schedule. Resuming a paused one skips the ticks that came due meanwhile.
-- Returns its name, or nothing when there is no such schedule.
-- params: name text, paused bool
UPDATE pgqueue.schedules
SET paused = $2,
    last_tick = CASE WHEN paused AND NOT $2 THEN greatest(coalesce(last_tick, created_at), now())
                     ELSE last_tick END
WHERE name = $1
RETURNING name;

-- name: delete_schedule
-- Delete a schedule (its jobs stay). Returns its name, or nothing when there is none.
-- params: name text
DELETE FROM pgqueue.schedules WHERE name = $1 RETURNING name;

-- name: due_schedules
-- The database clock, and the schedules a worker keeps: every one added with add_schedule, and
-- those declared in code that this worker declares too ($1), with what their ticks come after.
-- One row with a NULL name when there are none.
-- params: declared_names text[]
SELECT clock.db_now, s.name, s.cron, s.timezone, s.missed,
    coalesce(s.last_tick, s.created_at) AS ticks_after, s.updated_at
FROM (SELECT now() AS db_now) AS clock
LEFT JOIN pgqueue.schedules AS s ON NOT s.paused AND (NOT s.in_code OR s.name = ANY($1))
ORDER BY s.name;

-- name: enqueue_schedule_ticks
-- Enqueue a schedule's due ticks $3 (one job each, never twice) and move its last tick to $4,
-- unless it changed since it was read at $2 or another worker is doing it now. Returns the ids.
-- params: name text, seen_updated_at timestamptz, ticks timestamptz[], done_until timestamptz
SELECT id FROM pgqueue.enqueue_schedule_ticks($1, $2, $3, $4) AS id;
