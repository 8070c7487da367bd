"""Each worker is judged by the lease it declared (pgqueue.workers.heartbeat_timeout), whatever
the timeout of the worker doing the judging, and a worker of revision 0007 or before (no lease)
by the old default: the rescue, the removal of expired rows, and the older workers' own delete."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from pgqueue import Queue
from tests.jobs import Echo
from tests.store.transitions import start

SHORT = timedelta(seconds=2)


async def register(
    db: asyncpg.Connection, queue: Queue, lease: timedelta | None, silent_for: float
) -> UUID:
    """A worker row with ``lease`` (None: as a worker of 0007 registers) whose last beat was
    ``silent_for`` seconds ago."""
    worker_id = uuid4()
    if lease is None:  # the statement revision 0007's workers run
        await db.execute(
            "INSERT INTO pgqueue.workers (id, host, pid, queues, concurrency)"
            " VALUES ($1, 'old', 1, '{tests}', 1)",
            worker_id,
        )
    else:
        await queue.store.heartbeat_worker(
            id=worker_id,
            host="new",
            pid=1,
            queues=["tests"],
            concurrency=1,
            heartbeat_timeout=lease,
            connection=db,
        )
    await age(db, worker_id, silent_for)
    return worker_id


async def age(db: asyncpg.Connection, worker_id: UUID, silent_for: float) -> None:
    await db.execute(
        "UPDATE pgqueue.workers SET heartbeat_at = now() - make_interval(secs => $2) WHERE id = $1",
        worker_id,
        silent_for,
    )


async def held_job(db: asyncpg.Connection, queue: Queue, worker_id: UUID) -> int:
    """A job running under ``worker_id``."""
    job_id = await queue.enqueue(Echo(text="held"))
    claimed_by = await start(db, job_id)
    await db.execute(
        "UPDATE pgqueue.jobs SET worker_id = $2 WHERE id = $1 AND worker_id = $3",
        job_id,
        worker_id,
        claimed_by,
    )
    return job_id


async def rescue(queue: Queue, judge_timeout: timedelta = SHORT) -> list[int]:
    return await queue.store.rescue_expired_jobs(
        heartbeat_timeout=judge_timeout, default_max_attempts=4
    )


async def worker_ids(db: asyncpg.Connection) -> set[UUID]:
    return {row["id"] for row in await db.fetch("SELECT id FROM pgqueue.workers")}


async def test_a_short_timeout_does_not_judge_a_worker_with_a_longer_lease(
    queue: Queue, db: asyncpg.Connection
) -> None:
    patient = await register(db, queue, timedelta(seconds=30), silent_for=5)
    hasty = await register(db, queue, SHORT, silent_for=5)
    patient_job = await held_job(db, queue, patient)
    hasty_job = await held_job(db, queue, hasty)

    assert await rescue(queue, judge_timeout=SHORT) == [hasty_job]

    await age(db, patient, silent_for=31)
    assert await rescue(queue, judge_timeout=SHORT) == [patient_job]


async def test_a_long_timeout_does_not_wait_past_a_shorter_lease(
    queue: Queue, db: asyncpg.Connection
) -> None:
    hasty = await register(db, queue, SHORT, silent_for=3)
    job_id = await held_job(db, queue, hasty)

    assert await rescue(queue, judge_timeout=timedelta(minutes=5)) == [job_id]


@pytest.mark.parametrize(
    ("judge_timeout", "silent_for", "rescued"),
    [
        (SHORT, 5, False),  # judged by the old default, 30 s, not by the judge's 2 s
        (SHORT, 31, True),
        (timedelta(seconds=60), 31, False),  # a judge with a longer timeout waits for it
        (timedelta(seconds=60), 61, True),
    ],
)
async def test_a_worker_that_declared_no_lease_is_judged_by_the_old_default(
    queue: Queue,
    db: asyncpg.Connection,
    judge_timeout: timedelta,
    silent_for: float,
    rescued: bool,
) -> None:
    old = await register(db, queue, None, silent_for=silent_for)
    job_id = await held_job(db, queue, old)

    assert await rescue(queue, judge_timeout) == ([job_id] if rescued else [])
    assert await queue.store.delete_expired_workers(heartbeat_timeout=judge_timeout) == int(rescued)
    assert (old in await worker_ids(db)) is not rescued


async def test_expired_rows_are_removed_by_each_workers_own_lease(
    queue: Queue, db: asyncpg.Connection
) -> None:
    live = await register(db, queue, timedelta(seconds=30), silent_for=5)
    await register(db, queue, SHORT, silent_for=5)

    assert await queue.store.delete_expired_workers(heartbeat_timeout=SHORT) == 1
    assert await worker_ids(db) == {live}


async def test_an_older_workers_delete_leaves_a_row_whose_lease_runs(
    queue: Queue, db: asyncpg.Connection
) -> None:
    """A worker of 0007 deletes by its own timeout; the rescue takes the jobs of a worker whose
    row is gone, so the row of a live lease must stay, idle or not."""
    busy = await register(db, queue, timedelta(seconds=30), silent_for=5)
    idle = await register(db, queue, timedelta(seconds=30), silent_for=5)
    expired = await register(db, queue, SHORT, silent_for=5)
    job_id = await held_job(db, queue, busy)

    # Revision 0007's delete_expired_workers, run by a worker with a 2 s timeout.
    await db.execute("DELETE FROM pgqueue.workers WHERE heartbeat_at < now() - interval '2 s'")

    assert await worker_ids(db) == {busy, idle}
    assert expired not in await worker_ids(db)
    assert await rescue(queue) == []
    assert await db.fetchval("SELECT status::text FROM pgqueue.jobs WHERE id = $1", job_id) == (
        "running"
    )


async def test_a_stopping_worker_removes_its_row_though_its_lease_runs(
    queue: Queue, db: asyncpg.Connection
) -> None:
    stopping = await register(db, queue, timedelta(seconds=30), silent_for=0)
    other = await register(db, queue, timedelta(seconds=30), silent_for=0)

    await queue.store.deregister_worker(id=stopping)

    assert await worker_ids(db) == {other}


async def test_workers_report_their_lease(queue: Queue, db: asyncpg.Connection) -> None:
    new = await register(db, queue, timedelta(seconds=45), silent_for=0)
    old = await register(db, queue, None, silent_for=0)

    leases = {worker.id: worker.heartbeat_timeout for worker in await queue.workers()}

    assert leases == {new: timedelta(seconds=45), old: None}
