"""``backlog_*``: what jobs that cannot be claimed yet cost a worker, against an empty table.

Each run is on a fresh database: ``backlog_empty`` first, then one per size of each kind of
backlog, put straight into the table (untimed; ``fill_seconds``):

- ``scheduled``: jobs of the bench queue due tomorrow;
- ``paused``: jobs due now in a paused queue that the worker also serves.

One worker process serves both queues, and each run measures:

- its throughput on ``jobs`` no-op jobs enqueued first (as the ``process`` workload);
- then, idle, a stream of jobs enqueued at BACKLOG_STREAM_RATE for ``seconds``: wake-up
  latency (the enqueue's commit to the handler's first line) at p50 and p99, and the database
  CPU of the worker's sessions per streamed job, read from /proc for the server's backends (so
  only on a server on this machine).

Each run with a backlog also reports its figures as ratios of the empty table's.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
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
_CONCURRENCY = 10  # as the idle-latency workload's worker
_SERVES_BOTH = ("--queues", f"{BENCH_QUEUE},{PAUSED_QUEUE}")  # the last --queues counts

# The server's backends of the worker's sessions: every client session of this database but
# ours (an autovacuum worker there is the server's, not the worker's).
_WORKER_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    " AND backend_type = 'client backend' AND pid <> ALL($1)"
)


async def backlog_growth(
    dsn: str,
    *,
    scheduled_rows: Sequence[int],
    paused_rows: Sequence[int],
    jobs: int,
    seconds: float,
) -> list[Result]:
    """The empty table's run, then one per size and kind, with ratios to the empty one."""
    runs = [("empty", 0)]
    runs += [("scheduled", rows) for rows in scheduled_rows]
    runs += [("paused", rows) for rows in paused_rows]
    results: list[Result] = []
    for kind, rows in runs:
        async with fresh_database(dsn) as fresh:
            results.append(await _measure(fresh, kind, rows, jobs, seconds))
    empty = results[0].details
    for result in results[1:]:
        result.details.update(
            throughput_ratio=round(result.value / results[0].value, 3),
            wake_p99_ratio=round(result.details["wake_p99_ms"] / empty["wake_p99_ms"], 3),
            db_cpu_ratio=_ratio(result.details["db_cpu_ms_per_job"], empty["db_cpu_ms_per_job"]),
        )
    return results


async def _measure(dsn: str, kind: str, rows: int, jobs: int, seconds: float) -> Result:
    started = time.monotonic()
    if kind == "scheduled":
        await insert_pending_jobs(dsn, BENCH_QUEUE, rows, due_in=timedelta(days=1))
    elif kind == "paused":
        async with Queue.connect(dsn, max_size=1) as queue:
            await queue.pause_queue(PAUSED_QUEUE)
        await insert_pending_jobs(dsn, PAUSED_QUEUE, rows, due_in=timedelta(minutes=-1))
    fill_seconds = time.monotonic() - started
    throughput = await process(
        dsn, jobs=jobs, worker_processes=1, concurrency=_CONCURRENCY, options=_SERVES_BOTH
    )
    delays_ms, cpu_ms = await _stream_to_idle_worker(dsn, seconds)
    return Result(
        "backlog_empty" if kind == "empty" else f"backlog_{kind}_{rows}",
        throughput.value,
        "jobs/s",
        {
            "backlog": kind,
            "rows": rows,
            "fill_seconds": round(fill_seconds, 2),
            "jobs": jobs,
            "stream_rate": BACKLOG_STREAM_RATE,
            "streamed": len(delays_ms),
            "wake_p50_ms": round(statistics.median(delays_ms), 3),
            "wake_p99_ms": percentiles(delays_ms)["p99_ms"],
            "db_cpu_ms_per_job": None if cpu_ms is None else round(cpu_ms / len(delays_ms), 3),
        },
    )


async def _stream_to_idle_worker(dsn: str, seconds: float) -> tuple[list[float], float | None]:
    """Each streamed job's wake-up latency (ms), and the CPU time (ms) the worker's backends
    used meanwhile (None when the server's processes cannot be read here)."""
    commits: dict[int, int] = {}
    probe = await asyncpg.connect(dsn)
    try:
        async with Queue.connect(dsn, max_size=1) as queue:
            producer = await queue.store.pool.fetchval("SELECT pg_backend_pid()")
            ours = [producer, await probe.fetchval("SELECT pg_backend_pid()")]
            with tempfile.TemporaryDirectory() as directory:
                log = Path(directory) / "starts.log"
                log.touch()
                with running_workers(dsn, log, 1, _CONCURRENCY, options=_SERVES_BOTH):
                    await wait_until(lambda: registered_workers(queue), 1, what="worker up")
                    await asyncio.sleep(SETTLE)  # let it go idle: a benchmark, not a test
                    before = _cpu_ms(await probe.fetch(_WORKER_BACKENDS, ours))
                    async with streaming(queue, commits, BACKLOG_STREAM_RATE):
                        await asyncio.sleep(seconds)
                    streamed = partial(logged_starts, log)
                    await wait_until(streamed, len(commits), what="streamed jobs started")
                    after = _cpu_ms(await probe.fetch(_WORKER_BACKENDS, ours))
                starts = dict(handler_starts(log))
    finally:
        await probe.close()
    if starts.keys() != commits.keys():
        raise BenchmarkFailed(f"{len(starts)} starts for {len(commits)} streamed jobs")
    delays_ms = [(starts[job_id] - commits[job_id]) / 1e6 for job_id in commits]
    if before is None or after is None:
        return delays_ms, None
    # A session that ended meanwhile takes its CPU with it: counted from those still there.
    return delays_ms, sum(ms - before.get(pid, 0.0) for pid, ms in after.items())


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
