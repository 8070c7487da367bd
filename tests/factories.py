"""Helpers shared by tests: deadline waits, a worker running in the background, row counts,
the lines handlers recorded, extra connections, lock waits and notifications."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import asyncpg

from pgqueue import Queue, Worker
from pgqueue.sql import JOBS_CHANNEL

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


def lines(path: Path) -> list[str]:
    """The lines a job's handler recorded in ``path`` (none if it never wrote)."""
    return path.read_text().splitlines() if path.exists() else []


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


async def lock_waiters(db: asyncpg.Connection) -> int:
    """Sessions of this database waiting for a lock held by another transaction."""
    return int(
        await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


@contextlib.asynccontextmanager
async def connections(dsn: str, n: int) -> AsyncIterator[list[asyncpg.Connection]]:
    opened = [await asyncpg.connect(dsn) for _ in range(n)]
    try:
        yield opened
    finally:
        for connection in opened:
            await connection.close()


@contextlib.asynccontextmanager
async def notifications(dsn: str) -> AsyncIterator[list[str]]:
    """The payloads of the notifications on the jobs channel while the block runs."""
    received: list[str] = []
    listener = await asyncpg.connect(dsn)

    def on_notify(_connection: object, _pid: int, _channel: str, payload: object) -> None:
        received.append(str(payload))

    await listener.add_listener(JOBS_CHANNEL, on_notify)
    try:
        yield received
    finally:
        await listener.close()


async def delivered(db: asyncpg.Connection, received: list[str]) -> list[str]:
    """Every notification committed so far (delivery follows commit order, so once a marker
    sent now has arrived, every earlier one has too)."""
    marker = f"marker-{uuid4().hex}"
    await db.execute("SELECT pg_notify($1, $2)", JOBS_CHANNEL, marker)
    await eventually(lambda: list(received), until=lambda got: marker in got)
    return received[: received.index(marker)]


def free_ports(count: int = 1) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 (checked, not reserved)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first: int = probe.getsockname()[1]
        if first + count <= 65536 and all(_is_free(p) for p in range(first + 1, first + count)):
            return first


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
