"""``backlog_*``: what jobs that cannot be claimed yet cost a worker, against an empty table.

Every table of a run is a fresh database: ``backlog_empty``, and one per size of each kind of
backlog, put straight into the table (untimed; ``fill_seconds``):

- ``scheduled``: jobs of the bench queue due tomorrow;
- ``paused``: jobs due now in a paused queue that the worker also serves.

One worker process serves both queues of a table. On each table in turn, the run measures its
throughput on ``jobs`` no-op jobs enqueued first (as the ``process`` workload). Then, with one
idle worker on every table, a stream of jobs enqueued at BACKLOG_STREAM_RATE goes to each table
in turn, ``SEGMENT_SECONDS`` at a time, until each had ``seconds`` of it: wake-up latency (the
enqueue's commit to the handler's first line) at p50 and p99, and the database CPU of the
worker's sessions per streamed job, read from /proc for the server's backends during the
table's own segments (so only on a server on this machine). Taking turns spreads whatever else
the machine does over every table alike, which a tail percentile at 2 ms needs.

Each table with a backlog also reports its figures as ratios of the empty table's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path

import asyncpg

from pgqueue.bench import BACKLOG_STREAM_RATE
from pgqueue.bench.harness import (
    SETTLE,
    BenchmarkFailed,
    Result,
    fresh_database,
    handler_starts,
    logged_starts,
    percentiles,
    registered_workers,
    running_workers,
    streaming,
    wait_until,
)
from pgqueue.bench.jobs import BENCH_QUEUE
from pgqueue.bench.processing import process
from pgqueue.bench.rows import insert_pending_jobs
from pgqueue.queue import Queue

PAUSED_QUEUE = f"{BENCH_QUEUE}-paused"
SEGMENT_SECONDS = 5.0  # of the stream to one table before the next table's turn
_CONCURRENCY = 10  # as the idle-latency workload's worker
_SERVES_BOTH = ("--queues", f"{BENCH_QUEUE},{PAUSED_QUEUE}")  # the last --queues counts

# The server's backends of the worker's sessions: every client session of this database but
# ours (an autovacuum worker there is the server's, not the worker's).
_WORKER_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    " AND backend_type = 'client backend' AND pid <> ALL($1)"
)


@dataclass
class _Table:
    """One database of the run, and what its stream measured so far."""

    kind: str
    rows: int
    dsn: str
    fill_seconds: float
    throughput: float = 0.0
    commits: dict[int, int] = field(default_factory=dict)  # job id: its commit (monotonic ns)
    cpu_ms: float | None = 0.0  # of the worker's backends during this table's segments


async def backlog_growth(
    dsn: str,
    *,
    scheduled_rows: Sequence[int],
    paused_rows: Sequence[int],
    jobs: int,
    seconds: float,
) -> list[Result]:
    """The empty table's figures, then one set per size and kind, with ratios to the empty one."""
    runs = [("empty", 0)]
    runs += [("scheduled", rows) for rows in scheduled_rows]
    runs += [("paused", rows) for rows in paused_rows]
    async with contextlib.AsyncExitStack() as stack:
        tables = []
        for kind, rows in runs:
            fresh = await stack.enter_async_context(fresh_database(dsn))
            table = _Table(kind, rows, fresh, await _fill(fresh, kind, rows))
            processed = await process(
                fresh, jobs=jobs, worker_processes=1, concurrency=_CONCURRENCY, options=_SERVES_BOTH
            )
            table.throughput = processed.value
            tables.append(table)
        delays_ms = await _stream_in_turns(tables, seconds)
    turns = _turns(seconds)
    results = [
        _result(table, delays, jobs, turns) for table, delays in zip(tables, delays_ms, strict=True)
    ]
    empty = results[0].details
    for result in results[1:]:
        result.details.update(
            throughput_ratio=round(result.value / results[0].value, 3),
            wake_p99_ratio=round(result.details["wake_p99_ms"] / empty["wake_p99_ms"], 3),
            db_cpu_ratio=_ratio(result.details["db_cpu_ms_per_job"], empty["db_cpu_ms_per_job"]),
        )
    return results


async def _fill(dsn: str, kind: str, rows: int) -> float:
    """Put the backlog into the table; the seconds that took."""
    started = time.monotonic()
    if kind == "scheduled":
        await insert_pending_jobs(dsn, BENCH_QUEUE, rows, due_in=timedelta(days=1))
    elif kind == "paused":
        async with Queue.connect(dsn, max_size=1) as queue:
            await queue.pause_queue(PAUSED_QUEUE)
        await insert_pending_jobs(dsn, PAUSED_QUEUE, rows, due_in=timedelta(minutes=-1))
    return round(time.monotonic() - started, 2)


def _turns(seconds: float) -> int:
    return max(1, math.ceil(seconds / SEGMENT_SECONDS))


def _result(table: _Table, delays_ms: list[float], jobs: int, turns: int) -> Result:
    return Result(
        "backlog_empty" if table.kind == "empty" else f"backlog_{table.kind}_{table.rows}",
        table.throughput,
        "jobs/s",
        {
            "backlog": table.kind,
            "rows": table.rows,
            "fill_seconds": table.fill_seconds,
            "jobs": jobs,
            "stream_rate": BACKLOG_STREAM_RATE,
            "stream_turns": turns,
            "streamed": len(delays_ms),
            "wake_p50_ms": round(statistics.median(delays_ms), 3),
            "wake_p99_ms": percentiles(delays_ms)["p99_ms"],
            "db_cpu_ms_per_job": (
                None if table.cpu_ms is None else round(table.cpu_ms / len(delays_ms), 3)
            ),
        },
    )


async def _stream_in_turns(tables: list[_Table], seconds: float) -> list[list[float]]:
    """Each table's wake-up latencies (ms) for ``seconds`` of stream, given in turns of
    SEGMENT_SECONDS while an idle worker runs on every table; notes each table's CPU."""
    turns = _turns(seconds)
    async with contextlib.AsyncExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        probes, queues, logs = [], [], []
        for number, table in enumerate(tables):
            probe = await asyncpg.connect(table.dsn)
            stack.push_async_callback(probe.close)
            queue = await stack.enter_async_context(Queue.connect(table.dsn, max_size=1))
            log = directory / f"starts-{number}.log"
            log.touch()
            stack.enter_context(
                running_workers(table.dsn, log, 1, _CONCURRENCY, options=_SERVES_BOTH)
            )
            await wait_until(partial(registered_workers, queue), 1, what="worker up")
            probes.append(probe)
            queues.append(queue)
            logs.append(log)
        await asyncio.sleep(SETTLE)  # let them go idle: a benchmark, not a test
        for _ in range(turns):
            for table, probe, queue, log in zip(tables, probes, queues, logs, strict=True):
                await _segment(table, probe, queue, log, seconds / turns)
        starts = [dict(handler_starts(log)) for log in logs]
    delays_ms = []
    for table, started in zip(tables, starts, strict=True):
        if started.keys() != table.commits.keys():
            raise BenchmarkFailed(f"{len(started)} starts for {len(table.commits)} streamed jobs")
        delays_ms.append([(started[job] - at) / 1e6 for job, at in table.commits.items()])
    return delays_ms


async def _segment(
    table: _Table, probe: asyncpg.Connection, queue: Queue, log: Path, seconds: float
) -> None:
    """Stream to the table's idle worker for ``seconds``, and wait until each job started."""
    ours = [await probe.fetchval("SELECT pg_backend_pid()")]
    ours.append(await queue.store.pool.fetchval("SELECT pg_backend_pid()"))
    before = _cpu_ms(await probe.fetch(_WORKER_BACKENDS, ours))
    async with streaming(queue, table.commits, BACKLOG_STREAM_RATE):
        await asyncio.sleep(seconds)
    await wait_until(partial(logged_starts, log), len(table.commits), what="streamed jobs started")
    after = _cpu_ms(await probe.fetch(_WORKER_BACKENDS, ours))
    if before is None or after is None or table.cpu_ms is None:
        table.cpu_ms = None
        return
    # A session that ended meanwhile takes its CPU with it: counted from those still there.
    table.cpu_ms += sum(ms - before.get(pid, 0.0) for pid, ms in after.items())


def _cpu_ms(backends: list[asyncpg.Record]) -> dict[int, float] | None:
    """Each backend's CPU time so far (user and system, ms), by pid; None when the server does
    not run on this machine (or /proc is not there to read it)."""
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    for backend in backends:
        proc = Path(f"/proc/{backend['pid']}")
        try:
            if b"postgres" not in (proc / "cmdline").read_bytes():
                return None  # another machine's pid, and this one's process
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        used[backend["pid"]] = (int(fields[11]) + int(fields[12])) * tick_ms  # utime, stime
    return used


def _ratio(value: float | None, baseline: float | None) -> float | None:
    return None if value is None or not baseline else round(value / baseline, 3)
