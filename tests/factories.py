"""Helpers shared by tests: deadline waits, a worker running in the background, row counts."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from pgqueue import Queue, Worker

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T] | T], *, until: Callable[[T], bool], within: float = 10.0
) -> T:
    """Call ``probe`` (sync or async) until ``until(value)`` holds; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(0.02)


async def count(db: asyncpg.Connection, status: str | None = None) -> int:
    if status is None:
        return int(await db.fetchval("SELECT count(*) FROM pgqueue.jobs"))
    return int(
        await db.fetchval(
            "SELECT count(*) FROM pgqueue.jobs WHERE status = $1::text::pgqueue.job_status", status
        )
    )


async def status_of(db: asyncpg.Connection, job_id: int) -> str:
    return str(await db.fetchval("SELECT status::text FROM pgqueue.jobs WHERE id = $1", job_id))


@contextlib.asynccontextmanager
async def running(queue: Queue, **options: Any) -> AsyncIterator[Worker]:
    """A Worker running in a background task; stopped (gracefully) on exit."""
    worker = Worker(queue, **options)
    task = asyncio.create_task(worker.run())
    try:
        await eventually(
            lambda: queue.store.pool.fetchval(
                "SELECT count(*) FROM pgqueue.workers WHERE id = $1", worker.id
            ),
            until=lambda n: n == 1 or task.done(),
        )
        if task.done():
            task.result()  # surface the error that stopped it
        yield worker
    finally:
        await worker.stop()
        await task
