"""The rows ``pgqueue bench`` writes and counts with SQL of its own: millions of finished or
waiting jobs put straight into the table, and counts that stay cheap however many there are.

This SQL sets benchmarks up and checks them; it is not pgqueue's, so it lives here rather than
in ``pgqueue/sql`` (where every query is a ``JobStore`` method).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from uuid import uuid4

import asyncpg

from pgqueue.bench.harness import BenchmarkFailed
from pgqueue.bench.jobs import BENCH_QUEUE, Noop

FILL_CHUNK = 1_000_000  # rows per INSERT, each its own transaction: none grows huge

# Rows $4..$5 of $6 completed jobs (queue $1, job type $2, run by worker $3), ids in the order
# they finished: the last one at $7, the first one $8 earlier. Each ran for 1 ms and started
# 10 ms after it was enqueued.
_INSERT_FINISHED_JOBS = """
INSERT INTO pgqueue.jobs (queue, job_type, payload, status, attempts, run_at, created_at,
    started_at, finished_at, worker_id)
SELECT $1, $2, '{}', 'completed', 1, t.finished_at - interval '11 ms',
    t.finished_at - interval '11 ms', t.finished_at - interval '1 ms', t.finished_at, $3
FROM generate_series($4::bigint, $5::bigint) AS g
CROSS JOIN LATERAL (
    SELECT $7::timestamptz - $8::interval * (($6::bigint - g)::float8 / $6::bigint) AS finished_at
) AS t
"""

# $3 pending no-op jobs of queue $1 (job type $2), due $4 from now, a millisecond apart.
_INSERT_PENDING_JOBS = """
INSERT INTO pgqueue.jobs (queue, job_type, payload, run_at)
SELECT $1, $2, '{}', now() + $4::interval + g * interval '1 ms'
FROM generate_series(1, $3::bigint) AS g
"""

# The visibility map and statistics autovacuum leaves on a table, and the index entries of
# finished jobs it removes.
_VACUUM = "VACUUM ANALYZE pgqueue.jobs"

_COUNT_PENDING = "SELECT count(*) FROM pgqueue.jobs WHERE queue = $1 AND status = 'pending'"

_COUNT_COMPLETED = "SELECT count(*) FROM pgqueue.jobs WHERE status = 'completed'"

# Over the primary key: the cost is that of the range, whatever else the table holds.
_COUNT_COMPLETED_BETWEEN = (
    "SELECT count(*) FROM pgqueue.jobs WHERE id BETWEEN $1 AND $2 AND status = 'completed'"
)

_COUNT_FINISHED_BY = "SELECT count(*) FROM pgqueue.jobs WHERE finished_at <= $1"


async def insert_finished_jobs(
    dsn: str, rows: int, *, age: timedelta, spread: timedelta = timedelta(hours=1)
) -> datetime:
    """Insert ``rows`` completed no-op jobs of the bench queue, finished over ``spread`` up to
    ``age`` ago, then VACUUM ANALYZE, as on a long-lived table; checked by counting them.
    Returns the finished_at of the newest one."""
    connection = await asyncpg.connect(dsn)
    try:
        newest: datetime = await connection.fetchval("SELECT now() - $1::interval", age)
        worker_id = uuid4()  # the one worker that ran them all, long gone
        for first in range(1, rows + 1, FILL_CHUNK):
            last = min(first + FILL_CHUNK - 1, rows)
            await connection.execute(
                _INSERT_FINISHED_JOBS,
                *(BENCH_QUEUE, Noop.job_options.name, worker_id),
                *(first, last, rows, newest, spread),
            )
        await connection.execute(_VACUUM)  # as autovacuum would have on such a table
        counted = await connection.fetchval(_COUNT_COMPLETED)
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
        for first in range(0, rows, FILL_CHUNK):
            chunk = min(FILL_CHUNK, rows - first)
            await connection.execute(
                _INSERT_PENDING_JOBS, queue, Noop.job_options.name, chunk, due_in
            )
        await connection.execute(_VACUUM)
        await _flush_dirty_pages(connection)
        counted = await connection.fetchval(_COUNT_PENDING, queue)
    finally:
        await connection.close()
    if counted != rows:
        raise BenchmarkFailed(f"{counted} pending rows in {queue} after inserting {rows}")


async def vacuum_jobs(dsn: str) -> None:
    """VACUUM ANALYZE the jobs table, as autovacuum would have by then on a server that runs it
    (the table's storage parameters ask for it after 1 % of its rows changed)."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(_VACUUM)
    finally:
        await connection.close()


async def _flush_dirty_pages(connection: asyncpg.Connection) -> None:
    """CHECKPOINT, so that the fill's dirty pages are not written out by the backends measured
    next (a backlog built up over hours has long been written; one made in seconds has not,
    and the measured sessions wrote 8,000 buffers of it). Needs superuser or pg_checkpoint;
    without either the run goes on, and measures that writing too."""
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await connection.execute("CHECKPOINT")


async def count_completed_between(connection: asyncpg.Connection, first: int, last: int) -> int:
    """Completed jobs with ids from ``first`` to ``last``."""
    return int(await connection.fetchval(_COUNT_COMPLETED_BETWEEN, first, last))


async def count_finished_by(dsn: str, moment: datetime) -> int:
    """Jobs of any status that finished at or before ``moment``."""
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval(_COUNT_FINISHED_BY, moment))
    finally:
        await connection.close()
