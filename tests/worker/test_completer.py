"""The completer writes each batch of completions once, also when the worker stops while a
batch is in flight."""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import uuid4

import psycopg
import pytest

from pgqueue import Queue
from pgqueue.registry import registry
from pgqueue.rows import ClaimedJob
from pgqueue.worker.completer import Completer
from tests.jobs import Echo


async def claimed(queue: Queue, worker_id: object, count: int) -> list[ClaimedJob]:
    ids = [await queue.enqueue(Echo(text=str(n))) for n in range(count)]
    async with queue.store.pool.acquire() as connection:
        jobs = await queue.store.claim_jobs(
            queues=["tests"],
            job_types=registry.names(),
            worker_id=worker_id,  # type: ignore[arg-type]
            max_jobs=count,
            connection=connection,
        )
    assert sorted(job.id for job in jobs) == ids
    return sorted(jobs, key=lambda job: job.id)


def status_now(db: psycopg.Connection[tuple[str]], job_id: int) -> str:
    """The job's status, read without yielding to the event loop."""
    row = db.execute("SELECT status::text FROM pgqueue.jobs WHERE id = %s", [job_id]).fetchone()
    assert row is not None
    return row[0]


async def test_stop_while_a_batch_is_in_flight_records_it_once(
    queue: Queue, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    worker_id = uuid4()
    warm, last = await claimed(queue, worker_id, 2)
    written: list[int] = []
    completer = Completer(queue.store, worker_id, default_max_attempts=4, on_written=written.extend)
    completer.start()
    completer.complete(warm, '"0"')  # opens the completer's connection and prepares its statement
    await completer.flush()
    assert written == [warm.id]

    with psycopg.connect(dsn, autocommit=True) as db:
        completer.complete(last, '"1"')
        await asyncio.sleep(0)  # the completer's task sends the batch
        # Block the loop until the batch has committed: its reply waits unread in the socket,
        # and stop() runs before the loop reads it (the race a worker meets on shutdown).
        deadline = time.monotonic() + 10
        while status_now(db, last.id) != "completed":
            assert time.monotonic() < deadline, "the batch was never written"
        with caplog.at_level(logging.WARNING, logger="pgqueue.worker"):
            await asyncio.ensure_future(completer.stop())

    assert written == [warm.id, last.id]  # each reported written once
    assert [r.getMessage() for r in caplog.records] == []  # no "completion not recorded"
    row = await db_row(queue, last.id)
    assert row == ("completed", 1, '"1"')


async def db_row(queue: Queue, job_id: int) -> tuple[str, int, str]:
    row = await queue.store.pool.fetchrow(
        "SELECT status::text, attempts, result::text FROM pgqueue.jobs WHERE id = $1", job_id
    )
    assert row is not None
    return (row[0], row[1], row[2])
