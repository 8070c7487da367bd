"""The rows ``pgqueue bench`` writes and counts: millions of finished or waiting jobs put
straight into the table, and counts that stay cheap however many there are (the statements
are ``sql/bench.sql``, run by ``store.BenchStore``)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from uuid import uuid4

import asyncpg

from pgqueue.bench.harness import BenchmarkFailed
from pgqueue.bench.jobs import BENCH_QUEUE, Noop
from pgqueue.store import BenchStore

FILL_CHUNK = 1_000_000  # rows per INSERT, each its own transaction: none grows huge


async def insert_finished_jobs(
    dsn: str, rows: int, *, age: timedelta, spread: timedelta = timedelta(hours=1)
) -> datetime:
    """Insert ``rows`` completed no-op jobs of the bench queue, finished over ``spread`` up to
    ``age`` ago, then VACUUM ANALYZE, as on a long-lived table; checked by counting them.
    Returns the finished_at of the newest one."""
    connection = await asyncpg.connect(dsn)
    try:
        store = BenchStore(connection)
        newest = await store.database_time_ago(age)
        worker_id = uuid4()  # the one worker that ran them all, long gone
        for first in range(1, rows + 1, FILL_CHUNK):
            await store.insert_finished_jobs(
                queue=BENCH_QUEUE,
                job_type=Noop.job_options.name,
                worker_id=worker_id,
                first=first,
                last=min(first + FILL_CHUNK - 1, rows),
                rows=rows,
                newest=newest,
                spread=spread,
            )
        await store.vacuum_analyze_jobs()  # as autovacuum would have left such a table
        counted = await store.count_completed_jobs()
    finally:
        await connection.close()
    if counted != rows:
        raise BenchmarkFailed(f"{counted} completed rows after inserting {rows}")
    return newest


async def insert_pending_jobs(dsn: str, queue: str, rows: int, *, due_in: timedelta) -> None:
    """Insert ``rows`` pending no-op jobs into ``queue``, due ``due_in`` from now (negative:
    overdue), then VACUUM ANALYZE as autovacuum would have, and a checkpoint where the user may
    run one; checked by counting them."""
    connection = await asyncpg.connect(dsn)
    try:
        store = BenchStore(connection)
        for first in range(0, rows, FILL_CHUNK):
            chunk = min(FILL_CHUNK, rows - first)
            await store.insert_pending_jobs(
                queue=queue, job_type=Noop.job_options.name, rows=chunk, due_in=due_in
            )
        await store.vacuum_analyze_jobs()
        await _flush_dirty_pages(store)
        counted = await store.count_pending_jobs(queue)
    finally:
        await connection.close()
    if counted != rows:
        raise BenchmarkFailed(f"{counted} pending rows in {queue} after inserting {rows}")


async def vacuum_jobs(dsn: str) -> None:
    """VACUUM ANALYZE the jobs table, as autovacuum would have by then on a server that runs it
    (the table's storage parameters ask for it after 1 % of its rows changed)."""
    connection = await asyncpg.connect(dsn)
    try:
        await BenchStore(connection).vacuum_analyze_jobs()
    finally:
        await connection.close()


async def _flush_dirty_pages(store: BenchStore) -> None:
    """CHECKPOINT, so that the fill's dirty pages are not written out by the backends measured
    next (a backlog built up over hours has long been written; one made in seconds has not,
    and the measured sessions wrote 8,000 buffers of it). Needs superuser or pg_checkpoint;
    without either the run goes on, and measures that writing too."""
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await store.checkpoint()


async def count_completed_between(connection: asyncpg.Connection, first: int, last: int) -> int:
    """Completed jobs with ids from ``first`` to ``last``."""
    return await BenchStore(connection).count_completed_between(first, last)


async def count_finished_by(dsn: str, moment: datetime) -> int:
    """Jobs of any status that finished at or before ``moment``."""
    connection = await asyncpg.connect(dsn)
    try:
        return await BenchStore(connection).count_finished_by(moment)
    finally:
        await connection.close()
