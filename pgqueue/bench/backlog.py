"""``backlog_*``: what jobs that cannot be claimed yet cost a worker, against an empty table.

Every table of a run is a fresh database: ``backlog_empty``, and one per size of each kind of
backlog, put straight into the table (untimed; ``fill_seconds``):

- ``scheduled``: jobs of the bench queue due tomorrow;
- ``paused``: jobs due now in a paused queue that the worker also serves.

One worker process serves both queues of a table, and the tables are measured side by side, so
whatever else the machine does falls on each of them alike (a tail percentile at 2 ms needs
that):

- throughput on ``jobs`` no-op jobs enqueued first (as the ``process`` workload), in
  THROUGHPUT_ROUNDS rounds that go to each table in turn: all the rounds' jobs over all their
  seconds;
- then, after a VACUUM of each table (as autovacuum would have run by then), with one idle
  worker on every table, a stream of jobs enqueued at BACKLOG_STREAM_RATE
  to each table at once for ``seconds``, the streams staggered so that their enqueues
  alternate: wake-up latency (the enqueue's commit to the handler's first line) at p50 and
  p99, and the database CPU of the worker's sessions per streamed job, read from /proc for the
  server's backends (so only on a server on this machine).

Each table with a backlog also reports its figures as ratios of the empty table's.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from pgqueue.bench.rows import insert_pending_jobs, vacuum_jobs
from pgqueue.queue import Queue
from pgqueue.store import BenchStore

PAUSED_QUEUE = f"{BENCH_QUEUE}-paused"
THROUGHPUT_ROUNDS = 3
_CONCURRENCY = 10  # as the idle-latency workload's worker
_SERVES_BOTH = ("--queues", f"{BENCH_QUEUE},{PAUSED_QUEUE}")  # the last --queues counts


@dataclass
class _Table:
    """One database of the run, and what its stream measured so far."""

    kind: str
    rows: int
    dsn: str
    fill_seconds: float
    rounds: list[float] = field(default_factory=list)  # jobs/s of each throughput round
    commits: dict[int, int] = field(default_factory=dict)  # job id: its commit (monotonic ns)


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
            tables.append(_Table(kind, rows, fresh, await _fill(fresh, kind, rows)))
        for _ in range(THROUGHPUT_ROUNDS):
            for table in tables:
                processed = await process(
                    table.dsn,
                    jobs,
                    worker_processes=1,
                    concurrency=_CONCURRENCY,
                    options=_SERVES_BOTH,
                )
                table.rounds.append(processed.value)
        for table in tables:
            # The rounds' finished jobs leave index entries that every claim steps over until
            # a vacuum removes them. Autovacuum would have by now (the rounds changed far more
            # than the 1 % of rows that triggers it), but the server may run without it.
            await vacuum_jobs(table.dsn)
        delays_ms, cpu_ms = await _stream_side_by_side(tables, seconds)
    results = [_result(*measured, jobs) for measured in zip(tables, delays_ms, cpu_ms, strict=True)]
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


def _result(table: _Table, delays_ms: list[float], cpu_ms: float | None, jobs: int) -> Result:
    return Result(
        "backlog_empty" if table.kind == "empty" else f"backlog_{table.kind}_{table.rows}",
        # All the rounds' jobs over all their seconds.
        len(table.rounds) / sum(1 / rate for rate in table.rounds),
        "jobs/s",
        {
            "backlog": table.kind,
            "rows": table.rows,
            "fill_seconds": table.fill_seconds,
            "jobs": jobs,
            "rounds": [round(rate) for rate in table.rounds],
            "stream_rate": BACKLOG_STREAM_RATE,
            "streamed": len(delays_ms),
            "wake_p50_ms": round(statistics.median(delays_ms), 3),
            "wake_p99_ms": percentiles(delays_ms)["p99_ms"],
            "db_cpu_ms_per_job": None if cpu_ms is None else round(cpu_ms / len(delays_ms), 3),
        },
    )


async def _stream_side_by_side(
    tables: list[_Table], seconds: float
) -> tuple[list[list[float]], list[float | None]]:
    """Each table's wake-up latencies (ms) for ``seconds`` of stream to its idle worker, all
    tables at once, and the CPU time (ms) its worker's backends used meanwhile (None when the
    server's processes cannot be read here)."""
    async with contextlib.AsyncExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        probes, queues, logs, ours = [], [], [], []
        for number, table in enumerate(tables):
            connection = await asyncpg.connect(table.dsn)
            stack.push_async_callback(connection.close)
            probe = BenchStore(connection)
            queue = await stack.enter_async_context(Queue.connect(table.dsn, max_size=1))
            log = directory / f"starts-{number}.log"
            log.touch()
            stack.enter_context(
                running_workers(table.dsn, log, 1, _CONCURRENCY, options=_SERVES_BOTH)
            )
            await wait_until(partial(registered_workers, queue), 1, what="worker up")
            # The worker's sessions: every client session of the database but ours (the queue's
            # pool has one connection, and the probe).
            async with queue.store.lend_connection() as pooled:
                producer = await BenchStore(pooled).backend_pid()
            ours.append([producer, await probe.backend_pid()])
            probes.append(probe)
            queues.append(queue)
            logs.append(log)
        await asyncio.sleep(SETTLE)  # let them go idle: a benchmark, not a test
        before = [
            _cpu_ms(await probe.other_client_backends(pids))
            for probe, pids in zip(probes, ours, strict=True)
        ]
        async with contextlib.AsyncExitStack() as streams:
            for queue, table in zip(queues, tables, strict=True):
                await streams.enter_async_context(
                    streaming(queue, table.commits, BACKLOG_STREAM_RATE)
                )
                await asyncio.sleep(1 / BACKLOG_STREAM_RATE / len(tables))  # staggered
            await asyncio.sleep(seconds)
        for log, table in zip(logs, tables, strict=True):
            streamed = partial(logged_starts, log)
            await wait_until(streamed, len(table.commits), what="streamed jobs started")
        after = [
            _cpu_ms(await probe.other_client_backends(pids))
            for probe, pids in zip(probes, ours, strict=True)
        ]
        starts = [dict(handler_starts(log)) for log in logs]
    delays_ms = []
    for table, started in zip(tables, starts, strict=True):
        if started.keys() != table.commits.keys():
            raise BenchmarkFailed(f"{len(started)} starts for {len(table.commits)} streamed jobs")
        delays_ms.append([(started[job] - at) / 1e6 for job, at in table.commits.items()])
    return delays_ms, [_used(*pair) for pair in zip(before, after, strict=True)]


def _used(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    if before is None or after is None:
        return None
    # A session that ended meanwhile takes its CPU with it: counted from those still there.
    return sum(ms - before.get(pid, 0.0) for pid, ms in after.items())


def _cpu_ms(pids: list[int]) -> dict[int, float] | None:
    """Each backend's CPU time so far (user and system, ms), by pid; None when the server does
    not run on this machine (or /proc is not there to read it)."""
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    for pid in pids:
        proc = Path(f"/proc/{pid}")
        try:
            if b"postgres" not in (proc / "cmdline").read_bytes():
                return None  # another machine's pid, and this one's process
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        used[pid] = (int(fields[11]) + int(fields[12])) * tick_ms  # utime, stime
    return used


def _ratio(value: float | None, baseline: float | None) -> float | None:
    return None if value is None or not baseline else round(value / baseline, 3)
