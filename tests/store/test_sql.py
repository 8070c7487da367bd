"""The named queries against a migrated database: they prepare, are all used, use their index,
agree on statuses, and the worker-side store methods behave (claim, complete, fail, release)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

import pgqueue.store
from pgqueue import JobStatus, Queue
from pgqueue.rows import ClaimedJob
from pgqueue.sql import queries
from tests.factories import connections, eventually, lock_waiters
from tests.jobs import Echo, Note

ECHO = Echo.job_options.name


async def claim(
    queue: Queue,
    worker_id: UUID,
    *,
    max_jobs: int = 100,
    queues: Sequence[str] = ("tests",),
    job_types: Sequence[str] = (ECHO,),
) -> list[ClaimedJob]:
    async with queue.store.pool.acquire() as connection:
        return await queue.store.claim_jobs(
            queues=queues,
            job_types=job_types,
            worker_id=worker_id,
            max_jobs=max_jobs,
            connection=connection,
        )


async def fail(
    queue: Queue,
    job: ClaimedJob,
    worker_id: UUID,
    *,
    attempt: int | None = None,
    retry_delay: timedelta = timedelta(0),
    permanent: bool = False,
) -> JobStatus | None:
    """Record a failure of ``job`` the way the worker's executor does."""
    attempt = job.attempt if attempt is None else attempt
    error = {
        "attempt": attempt,
        "worker_id": str(worker_id),
        "type": "RuntimeError",
        "message": f"attempt {attempt} failed",
        "traceback": "Traceback (most recent call last): ...",
    }
    return await queue.store.fail_job(
        id=job.id,
        attempt=attempt,
        worker_id=worker_id,
        error=json.dumps(error),
        last_error=f"RuntimeError: attempt {attempt} failed",
        retry_delay=retry_delay,
        permanent=permanent,
        default_max_attempts=4,
    )


async def job_row(db: asyncpg.Connection, job_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT status::text AS status, attempts, worker_id, started_at, finished_at, result,"
        " last_error, errors, run_at FROM pgqueue.jobs WHERE id = $1",
        job_id,
    )
    assert row is not None
    values = dict(row)
    values["errors"] = json.loads(values["errors"])
    return values


@pytest.mark.parametrize("name", sorted(queries))
async def test_query_prepares_with_the_parameter_count_of_its_params_line(
    db: asyncpg.Connection, name: str
) -> None:
    query = queries[name]

    statement = await db.prepare(query.sql)

    assert len(statement.get_parameters()) == len(query.params), query.params


def test_every_query_is_used_by_the_store_and_every_used_query_exists() -> None:
    source = Path(pgqueue.store.__file__).read_text(encoding="utf-8")

    used = set(re.findall(r"""queries\[["'](\w+)["']\]""", source))

    assert used == set(queries)


async def test_claim_uses_the_claimable_index(db: asyncpg.Connection, dsn: str) -> None:
    # A realistic table: mostly finished rows, which the partial index leaves out.
    await db.execute(
        "INSERT INTO pgqueue.jobs (job_type, queue, status)"
        " SELECT $1, 'tests', CASE WHEN n % 50 = 0 THEN 'pending' ELSE 'completed' END"
        "::pgqueue.job_status FROM generate_series(1, 5000) AS n",
        ECHO,
    )
    await db.execute("ANALYZE pgqueue.jobs")
    before = await scans_of_jobs(db)

    # The claim runs inside pgqueue.claim_jobs(), out of EXPLAIN's sight: count the scans it
    # made instead, on a session of its own whose statistics are flushed when it closes.
    claimer = await asyncpg.connect(dsn)
    try:
        claimed = await claimer.fetch(queries["claim_jobs"].sql, ["tests"], [ECHO], uuid4(), 10)
    finally:
        await claimer.close()

    assert len(claimed) == 10
    after = await eventually(lambda: scans_of_jobs(db), until=lambda now: now != before)
    assert after["claimable_index_scans"] > before["claimable_index_scans"]
    assert after["sequential_scans"] == before["sequential_scans"]


async def test_a_claim_commits_without_waiting_for_the_wal_flush_and_nothing_else_does(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue(Echo(text="x"))
    session_setting = await db.fetchval("SHOW synchronous_commit")

    async with db.transaction():
        claimed = await db.fetch(queries["claim_jobs"].sql, ["tests"], [ECHO], uuid4(), 10)
        in_the_claim = await db.fetchval("SHOW synchronous_commit")

    assert len(claimed) == 1
    assert in_the_claim == "off"
    # SET LOCAL: the next transaction on the connection (an enqueue, say) is durable as before.
    assert await db.fetchval("SHOW synchronous_commit") == session_setting == "on"


async def scans_of_jobs(db: asyncpg.Connection) -> dict[str, int]:
    await db.execute("SELECT pg_stat_clear_snapshot()")
    row = await db.fetchrow(
        "SELECT (SELECT idx_scan FROM pg_stat_user_indexes"
        "        WHERE indexrelname = 'jobs_claimable_idx') AS claimable_index_scans,"
        " (SELECT seq_scan FROM pg_stat_user_tables"
        "  WHERE schemaname = 'pgqueue' AND relname = 'jobs') AS sequential_scans"
    )
    assert row is not None
    return dict(row)


async def test_job_status_enum_matches_the_database_enum(db: asyncpg.Connection) -> None:
    labels = await db.fetchval("SELECT enum_range(NULL::pgqueue.job_status)::text[]")

    assert labels == [status.value for status in JobStatus]


# --- claim ------------------------------------------------------------------------------------


async def test_concurrent_claims_are_disjoint(queue: Queue, db: asyncpg.Connection) -> None:
    ids = await queue.enqueue_batch([Echo(text=str(n)) for n in range(200)])
    workers = [uuid4() for _ in range(4)]

    async def claim_until_empty(worker_id: UUID) -> list[int]:
        claimed: list[int] = []
        while batch := await claim(queue, worker_id, max_jobs=7):
            claimed += [job.id for job in batch]
        return claimed

    per_worker = await asyncio.gather(*(claim_until_empty(worker) for worker in workers))

    all_claimed = [job_id for claimed in per_worker for job_id in claimed]
    assert len(all_claimed) == len(set(all_claimed)) == 200
    assert set(all_claimed) == set(ids)
    rows = await db.fetch("SELECT id, status::text, worker_id, attempts FROM pgqueue.jobs")
    holder = {
        job_id: worker
        for worker, claimed in zip(workers, per_worker, strict=True)
        for job_id in claimed
    }
    assert {(r["id"], r["status"], r["worker_id"], r["attempts"]) for r in rows} == {
        (job_id, "running", holder[job_id], 1) for job_id in ids
    }


async def test_claim_returns_what_the_worker_needs_and_marks_the_row_running(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="hi", numbers=[1]), max_retries=2)
    worker_id = uuid4()

    [claimed] = await claim(queue, worker_id)

    assert (claimed.id, claimed.queue, claimed.job_type) == (job_id, "tests", ECHO)
    assert json.loads(claimed.payload) == {"text": "hi", "numbers": [1]}
    assert (claimed.attempt, claimed.max_attempts, claimed.retry_backoff) == (1, 3, None)
    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("running", 1, worker_id)
    assert row["started_at"] is not None


async def test_claim_takes_highest_priority_first_then_oldest_run_at(
    queue: Queue, db: asyncpg.Connection
) -> None:
    now = await db.fetchval("SELECT now()")
    seeded = {
        "low, oldest": (-1, timedelta(hours=4)),
        "normal": (0, timedelta(hours=3)),
        "high, older": (5, timedelta(hours=2)),
        "high, newer": (5, timedelta(hours=1)),
    }
    ids = {
        label: await queue.enqueue(Echo(text=label), priority=priority, run_at=now - age)
        for label, (priority, age) in seeded.items()
    }
    worker_id = uuid4()

    order = [job.id for _ in seeded for job in await claim(queue, worker_id, max_jobs=1)]

    assert order == [
        ids[label] for label in ("high, older", "high, newer", "normal", "low, oldest")
    ]


async def test_claim_never_returns_a_job_due_in_the_future(
    queue: Queue, db: asyncpg.Connection
) -> None:
    later = await queue.enqueue(Echo(text="later"), delay=timedelta(hours=1), priority=100)
    now = await queue.enqueue(Echo(text="now"))

    claimed = await claim(queue, uuid4())

    assert [job.id for job in claimed] == [now]
    assert (await job_row(db, later))["status"] == "pending"
    await db.execute("UPDATE pgqueue.jobs SET run_at = now() - interval '1 s' WHERE id = $1", later)
    assert [job.id for job in await claim(queue, uuid4())] == [later]


async def test_claim_only_returns_the_queues_and_job_types_asked_for(
    queue: Queue, db: asyncpg.Connection
) -> None:
    wanted = await queue.enqueue(Echo(text="wanted"))
    other_queue = await queue.enqueue(Echo(text="elsewhere"), queue="other")
    other_type = await queue.enqueue(Note(log_path="/dev/null"))

    claimed = await claim(queue, uuid4(), queues=["tests"], job_types=[ECHO])

    assert [job.id for job in claimed] == [wanted]
    assert {(await job_row(db, job_id))["status"] for job_id in (other_queue, other_type)} == {
        "pending"
    }


async def test_claim_respects_max_jobs(queue: Queue, db: asyncpg.Connection) -> None:
    await queue.enqueue_batch([Echo(text=str(n)) for n in range(5)])

    claimed = await claim(queue, uuid4(), max_jobs=3)

    assert len(claimed) == 3
    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs WHERE status = 'running'") == 3


async def seconds_until_next_echo(queue: Queue) -> float | None:
    return await queue.store.seconds_until_next_job(queues=["tests"], job_types=[ECHO])


async def test_seconds_until_next_job_is_none_when_nothing_is_pending(queue: Queue) -> None:
    job_id = await queue.enqueue(Echo(text="x"))
    await queue.cancel(job_id)  # a finished row of the right queue and type does not count

    assert await seconds_until_next_echo(queue) is None


async def test_seconds_until_next_job_follows_the_earliest_pending_run_at(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="later"), delay=timedelta(hours=1))
    assert 3500 < (await seconds_until_next_echo(queue) or 0) <= 3600

    await db.execute(
        "UPDATE pgqueue.jobs SET run_at = now() - interval '1 h' WHERE id = $1", job_id
    )

    assert await seconds_until_next_echo(queue) == 0


# --- complete and fail: fenced by worker id and attempt -----------------------------------------


async def test_complete_with_wrong_worker_or_attempt_changes_nothing(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue(Echo(text="x"))
    worker_id = uuid4()
    [job] = await claim(queue, worker_id)
    before = await job_row(db, job.id)

    wrong_worker = await queue.store.complete_jobs(
        ids=[job.id], attempts=[1], results=['"late"'], worker_id=uuid4(), connection=db
    )
    wrong_attempt = await queue.store.complete_jobs(
        ids=[job.id], attempts=[2], results=['"late"'], worker_id=worker_id, connection=db
    )

    assert (wrong_worker, wrong_attempt) == ([], [])
    assert await job_row(db, job.id) == before
    assert await queue.store.complete_jobs(
        ids=[job.id], attempts=[1], results=['"done"'], worker_id=worker_id, connection=db
    ) == [job.id]
    row = await job_row(db, job.id)
    assert (row["status"], row["result"]) == ("completed", '"done"')
    assert row["finished_at"] is not None


async def test_complete_locks_rows_in_id_order_whatever_order_it_is_given(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    # enqueue_job locks a new job's parents in id order; a completion taking them in another
    # order could deadlock with it.
    await queue.enqueue_batch([Echo(text="low"), Echo(text="high")])
    worker_id = uuid4()
    low, high = sorted(job.id for job in await claim(queue, worker_id))
    # The lower id's row now comes last in the table, as the planner scans a small one.
    await db.execute("UPDATE pgqueue.jobs SET priority = 1 WHERE id = $1", low)
    async with connections(dsn, 2) as (holder, completer):
        holder_tx = holder.transaction()
        await holder_tx.start()
        await holder.execute("SELECT FROM pgqueue.jobs WHERE id = $1 FOR NO KEY UPDATE", low)
        completing = asyncio.create_task(
            queue.store.complete_jobs(
                ids=[high, low],  # descending
                attempts=[1, 1],
                results=[None, None],
                worker_id=worker_id,
                connection=completer,
            )
        )
        await eventually(lambda: lock_waiters(db), until=lambda waiting: waiting == 1)

        # Waiting on the lower id, the completion has not touched the higher one yet.
        async with db.transaction():
            assert (
                await db.fetchval(
                    "SELECT id FROM pgqueue.jobs WHERE id = $1 FOR NO KEY UPDATE NOWAIT", high
                )
                == high
            )
        await holder_tx.rollback()
        assert sorted(await completing) == [low, high]


async def test_complete_writes_many_jobs_at_once_and_skips_finished_ones(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue_batch([Echo(text=str(n)) for n in range(3)])
    worker_id = uuid4()
    jobs = await claim(queue, worker_id)
    ids = [job.id for job in jobs]

    first = await queue.store.complete_jobs(
        ids=ids, attempts=[1, 1, 1], results=["1", None, "3"], worker_id=worker_id, connection=db
    )
    again = await queue.store.complete_jobs(
        ids=ids, attempts=[1, 1, 1], results=["9", "9", "9"], worker_id=worker_id, connection=db
    )

    assert (sorted(first), again) == (sorted(ids), [])
    rows = await db.fetch("SELECT id, status::text, result FROM pgqueue.jobs ORDER BY id")
    assert [(r["id"], r["status"], r["result"]) for r in rows] == [
        (ids[0], "completed", "1"),
        (ids[1], "completed", None),
        (ids[2], "completed", "3"),
    ]


async def test_fail_with_wrong_worker_or_attempt_changes_nothing(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue(Echo(text="x"))
    worker_id = uuid4()
    [job] = await claim(queue, worker_id)
    before = await job_row(db, job.id)

    wrong_worker = await fail(queue, job, uuid4(), permanent=True)
    wrong_attempt = await fail(queue, job, worker_id, attempt=2, permanent=True)

    assert (wrong_worker, wrong_attempt) == (None, None)
    assert await job_row(db, job.id) == before
    assert await fail(queue, job, worker_id, permanent=True) is JobStatus.FAILED


async def test_fail_with_attempts_left_returns_to_pending_after_the_retry_delay(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="x"), max_retries=2)
    worker_id = uuid4()
    [job] = await claim(queue, worker_id)

    status = await fail(queue, job, worker_id, retry_delay=timedelta(seconds=30))

    assert status is JobStatus.PENDING
    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"], row["worker_id"], row["finished_at"]) == (
        "pending",
        1,
        None,
        None,
    )
    assert row["last_error"] == "RuntimeError: attempt 1 failed"
    # run_at is the failing statement's now() + retry_delay; errors[0].at is that same now().
    assert await db.fetchval(
        "SELECT run_at = (errors -> 0 ->> 'at')::timestamptz + interval '30 s'"
        " AND run_at - now() BETWEEN interval '20 s' AND interval '30 s'"
        " FROM pgqueue.jobs WHERE id = $1",
        job_id,
    )
    assert await claim(queue, uuid4()) == []


async def test_fail_on_the_last_attempt_ends_failed(queue: Queue, db: asyncpg.Connection) -> None:
    job_id = await queue.enqueue(Echo(text="x"), max_retries=1)
    first_worker, second_worker = uuid4(), uuid4()
    [first] = await claim(queue, first_worker)
    assert await fail(queue, first, first_worker) is JobStatus.PENDING
    [second] = await claim(queue, second_worker)

    status = await fail(queue, second, second_worker)

    assert (status, second.attempt) == (JobStatus.FAILED, 2)
    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("failed", 2, second_worker)
    assert row["finished_at"] is not None
    assert [error["attempt"] for error in row["errors"]] == [1, 2]
    assert row["last_error"] == "RuntimeError: attempt 2 failed"
    assert await claim(queue, uuid4()) == []


async def test_permanent_failure_ends_failed_even_with_attempts_left(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="x"), max_retries=5)
    worker_id = uuid4()
    [job] = await claim(queue, worker_id)

    status = await fail(queue, job, worker_id, permanent=True)

    assert status is JobStatus.FAILED
    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"], len(row["errors"])) == ("failed", 1, 1)


async def test_error_history_keeps_the_last_20_attempts_each_stamped(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="x"), max_retries=30)
    worker_id = uuid4()
    for _ in range(25):
        [job] = await claim(queue, worker_id)
        assert await fail(queue, job, worker_id) is JobStatus.PENDING

    row = await job_row(db, job_id)

    assert [error["attempt"] for error in row["errors"]] == list(range(6, 26))
    assert all(error["message"] == f"attempt {error['attempt']} failed" for error in row["errors"])
    assert row["last_error"] == "RuntimeError: attempt 25 failed"
    stamps_are_recent = await db.fetchval(
        "SELECT bool_and((e ->> 'at')::timestamptz BETWEEN now() - interval '1 min' AND now())"
        " FROM pgqueue.jobs, jsonb_array_elements(errors) AS e WHERE id = $1",
        job_id,
    )
    assert stamps_are_recent is True


# --- release ----------------------------------------------------------------------------------


async def test_release_puts_the_workers_running_jobs_back_and_uncharges_the_attempt(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue_batch([Echo(text=str(n)) for n in range(4)])
    leaving, staying = uuid4(), uuid4()
    released_jobs = await claim(queue, leaving, max_jobs=3)
    [kept] = await claim(queue, staying)

    released = await queue.store.release_worker_jobs(worker_id=leaving)

    assert sorted(released) == sorted(job.id for job in released_jobs)
    for job_id in released:
        row = await job_row(db, job_id)
        assert (row["status"], row["attempts"], row["worker_id"], row["started_at"]) == (
            "pending",
            0,
            None,
            None,
        )
    row = await job_row(db, kept.id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("running", 1, staying)
    reclaimed = await claim(queue, uuid4())
    assert sorted(job.id for job in reclaimed) == sorted(released)
    assert {job.attempt for job in reclaimed} == {1}


# --- workers ----------------------------------------------------------------------------------


async def test_worker_registers_with_its_first_heartbeat_and_deregisters(
    queue: Queue, db: asyncpg.Connection
) -> None:
    worker_id = uuid4()

    worker = {
        "id": worker_id,
        "host": "box",
        "pid": 42,
        "queues": ["tests", "default"],
        "concurrency": 8,
        "heartbeat_timeout": timedelta(seconds=30),
    }
    await queue.store.heartbeat_worker(**worker, connection=db)
    row = await db.fetchrow(
        "SELECT host, pid, queues, concurrency, heartbeat_timeout FROM pgqueue.workers"
    )
    assert dict(row or {}) == {
        "host": "box",
        "pid": 42,
        "queues": ["tests", "default"],
        "concurrency": 8,
        "heartbeat_timeout": timedelta(seconds=30),
    }

    await db.execute("UPDATE pgqueue.workers SET heartbeat_at = now() - interval '1 h'")
    await queue.store.heartbeat_worker(**worker, connection=db)  # an update
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers") == 1
    assert await db.fetchval(
        "SELECT heartbeat_at > now() - interval '1 min' FROM pgqueue.workers WHERE id = $1",
        worker_id,
    )

    await queue.store.deregister_worker(id=worker_id)
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers") == 0
