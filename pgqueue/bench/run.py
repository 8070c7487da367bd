"""Runs the workloads of ``pgqueue bench``, each on a database of its own, and checks them.

Every figure is checked against the database before it is reported: the enqueue workloads count
their rows, the processing workload counts completed rows and the handler starts (each job
exactly once). Times are taken with the monotonic clock of this machine.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg

from pgqueue.bench.backlog import backlog_growth
from pgqueue.bench.harness import (
    SETTLE,
    BenchmarkFailed,
    Result,
    fresh_database,
    percentiles,
    registered_workers,
    running_workers,
    wait_for_start,
    wait_until,
)
from pgqueue.bench.jobs import BENCH_QUEUE, Noop
from pgqueue.bench.processing import BATCH, process
from pgqueue.bench.prune import latency_during_prune
from pgqueue.bench.rows import insert_finished_jobs
from pgqueue.queue import Queue
from pgqueue.store import BenchStore

Workload = Callable[[str], Awaitable[Result]]  # run on the DSN of a fresh database


@dataclass(frozen=True)
class Settings:
    jobs: int = 20_000  # processed per run of the processing workload
    enqueue_jobs: int = 20_000  # per enqueue workload
    worker_processes: Sequence[int] = (1, 2)
    concurrency: int = 100
    latency_samples: int = 200
    # One more processing run (1 worker process) per count, among that many finished jobs.
    finished_rows: Sequence[int] = ()
    prune_rows: int | None = None  # old finished jobs pruned while claims are timed; None: skip
    # Runs with jobs scheduled for later, or pending in a paused queue, against an empty table.
    scheduled_rows: Sequence[int] = ()
    paused_rows: Sequence[int] = ()
    stream_seconds: float = 15.0  # of the stream timed in each of those runs


async def run_all(dsn: str, settings: Settings) -> dict[str, Any]:
    """Every workload, each on a fresh database; with the machine and versions."""
    results = [await _on_fresh_database(dsn, workload) for workload in _workloads(settings)]
    if settings.scheduled_rows or settings.paused_rows:
        results += await backlog_growth(
            dsn,
            scheduled_rows=settings.scheduled_rows,
            paused_rows=settings.paused_rows,
            jobs=settings.jobs,
            seconds=settings.stream_seconds,
        )
    return {
        "machine": await _machine(dsn),
        "settings": {
            "jobs": settings.jobs,
            "enqueue_jobs": settings.enqueue_jobs,
            "concurrency": settings.concurrency,
            "latency_samples": settings.latency_samples,
            "finished_rows": list(settings.finished_rows),
            "prune_rows": settings.prune_rows,
            "scheduled_rows": list(settings.scheduled_rows),
            "paused_rows": list(settings.paused_rows),
            "stream_seconds": settings.stream_seconds,
        },
        "results": [result.__dict__ for result in results],
    }


def _workloads(settings: Settings) -> list[Workload]:
    workloads: list[Workload] = [
        partial(single_enqueue, jobs=settings.enqueue_jobs),
        partial(batch_enqueue, jobs=settings.enqueue_jobs),
    ]
    workloads += [
        partial(
            process,
            jobs=settings.jobs,
            worker_processes=processes,
            concurrency=settings.concurrency,
        )
        for processes in settings.worker_processes
    ]
    workloads += [
        partial(
            process_among_finished_jobs,
            finished_rows=rows,
            jobs=settings.jobs,
            concurrency=settings.concurrency,
        )
        for rows in settings.finished_rows
    ]
    workloads.append(partial(latency, samples=settings.latency_samples))
    if settings.prune_rows is not None:
        workloads.append(partial(latency_during_prune, rows=settings.prune_rows))
    return workloads


async def single_enqueue(dsn: str, jobs: int) -> Result:
    async with Queue.connect(dsn, max_size=1) as queue:
        started = time.monotonic()
        for _ in range(jobs):
            await queue.enqueue(Noop())
        elapsed = time.monotonic() - started
        await _expect_rows(queue, jobs)
    return Result("single_enqueue", jobs / elapsed, "jobs/s", {"jobs": jobs})


async def batch_enqueue(dsn: str, jobs: int) -> Result:
    async with Queue.connect(dsn, max_size=1) as queue:
        started = time.monotonic()
        for first in range(0, jobs, BATCH):
            await queue.enqueue_batch([Noop() for _ in range(min(BATCH, jobs - first))])
        elapsed = time.monotonic() - started
        await _expect_rows(queue, jobs)
    return Result("batch_enqueue", jobs / elapsed, "jobs/s", {"jobs": jobs, "batch": BATCH})


async def process_among_finished_jobs(
    dsn: str, finished_rows: int, jobs: int, concurrency: int
) -> Result:
    """``process`` with one worker process on a table that already holds ``finished_rows``
    completed jobs of the bench queue, finished within the last hour (inserted first, untimed)."""
    started = time.monotonic()
    await insert_finished_jobs(dsn, finished_rows, age=timedelta(0))
    fill_seconds = time.monotonic() - started
    result = await process(dsn, jobs=jobs, worker_processes=1, concurrency=concurrency)
    return replace(
        result,
        workload=f"{result.workload}_{finished_rows}_finished",
        details={
            **result.details,
            "finished_rows": finished_rows,
            "fill_seconds": round(fill_seconds, 2),
        },
    )


async def latency(dsn: str, samples: int) -> Result:
    """Commit of an enqueue to the first line of its handler, on an idle worker."""
    delays_ms: list[float] = []
    async with Queue.connect(dsn, max_size=1) as queue:
        with tempfile.TemporaryDirectory() as directory:
            log = Path(directory) / "starts.log"
            log.touch()
            with running_workers(dsn, log, 1, 10):
                await wait_until(lambda: registered_workers(queue), 1, what="worker registered")
                await asyncio.sleep(SETTLE)  # let it go idle: a benchmark, not a test
                for _ in range(samples):
                    job_id = await queue.enqueue(Noop())
                    committed = time.monotonic_ns()
                    started = await wait_for_start(log, job_id)
                    delays_ms.append((started - committed) / 1e6)
                    await asyncio.sleep(random.uniform(0.02, 0.1))
    return Result(
        "latency",
        statistics.median(delays_ms),
        "ms (p50)",
        {"samples": samples, **percentiles(delays_ms)},
    )


# --- helpers -------------------------------------------------------------------------------


async def _on_fresh_database(dsn: str, workload: Callable[[str], Awaitable[Result]]) -> Result:
    async with fresh_database(dsn) as fresh:
        return await workload(fresh)


async def _expect_rows(queue: Queue, jobs: int) -> None:
    stats = await queue.stats(BENCH_QUEUE)
    if stats.pending + stats.scheduled != jobs:
        raise BenchmarkFailed(f"{stats.pending + stats.scheduled} rows for {jobs} enqueued jobs")


async def _machine(dsn: str) -> dict[str, Any]:
    connection = await asyncpg.connect(dsn)
    try:
        server = await BenchStore(connection).server_version()
    finally:
        await connection.close()
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": server,
        "pgqueue": version("pgqueue"),
        "asyncpg": version("asyncpg"),
    }
