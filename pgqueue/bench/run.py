"""Runs the workloads of ``pgqueue bench``, each on a database of its own, and checks them.

Every figure is checked against the database before it is reported: the enqueue workloads count
their rows, the processing workload counts completed rows and the handler starts (each job
exactly once). Times are taken with the monotonic clock of this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg

from pgqueue.bench.harness import (
    SETTLE,
    BenchmarkFailed,
    Result,
    handler_starts,
    logged_starts,
    peak_rss_mib,
    percentiles,
    registered_workers,
    running_workers,
    wait_for_start,
    wait_until,
)
from pgqueue.bench.jobs import BENCH_QUEUE, Noop
from pgqueue.bench.prune import latency_during_prune
from pgqueue.bench.rows import count_completed_between, insert_finished_jobs
from pgqueue.queue import Queue

_BATCH = 1000  # jobs per enqueue_batch call

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


async def run_all(dsn: str, settings: Settings) -> dict[str, Any]:
    """Every workload, each on a fresh database; with the machine and versions."""
    results = [await _on_fresh_database(dsn, workload) for workload in _workloads(settings)]
    return {
        "machine": await _machine(dsn),
        "settings": {
            "jobs": settings.jobs,
            "enqueue_jobs": settings.enqueue_jobs,
            "concurrency": settings.concurrency,
            "latency_samples": settings.latency_samples,
            "finished_rows": list(settings.finished_rows),
            "prune_rows": settings.prune_rows,
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
        for first in range(0, jobs, _BATCH):
            await queue.enqueue_batch([Noop() for _ in range(min(_BATCH, jobs - first))])
        elapsed = time.monotonic() - started
        await _expect_rows(queue, jobs)
    return Result("batch_enqueue", jobs / elapsed, "jobs/s", {"jobs": jobs, "batch": _BATCH})


async def process(dsn: str, jobs: int, worker_processes: int, concurrency: int) -> Result:
    """From starting ``pgqueue work`` to the last of ``jobs`` pre-enqueued jobs completing."""
    ids: list[int] = []
    async with Queue.connect(dsn, max_size=1) as queue:
        for first in range(0, jobs, _BATCH):
            ids += await queue.enqueue_batch([Noop() for _ in range(min(_BATCH, jobs - first))])
    # Progress is counted over these ids alone, so finished jobs already in the table cost the
    # probe nothing (counting the whole queue would scan them all, 100 times a second).
    connection = await asyncpg.connect(dsn)
    try:
        with tempfile.TemporaryDirectory() as directory:
            log = Path(directory) / "starts.log"
            started = time.monotonic()
            with running_workers(dsn, log, worker_processes, concurrency) as workers:
                # The database is asked only once every handler has started, so polling it
                # does not take CPU from the worker and the server while they work.
                await wait_until(partial(logged_starts, log), jobs, what="handler starts")
                completed = partial(count_completed_between, connection, ids[0], ids[-1])
                await wait_until(completed, jobs, what="jobs completed")
                elapsed = time.monotonic() - started
                peak_rss = peak_rss_mib(workers)
            starts = [job_id for job_id, _ in handler_starts(log)]
    finally:
        await connection.close()
    if len(starts) != jobs or len(set(starts)) != jobs:
        raise BenchmarkFailed(f"{len(starts)} handler starts for {jobs} jobs")
    return Result(
        f"process_{worker_processes}_worker{'s' if worker_processes > 1 else ''}",
        jobs / elapsed,
        "jobs/s",
        {
            "jobs": jobs,
            "worker_processes": worker_processes,
            "concurrency": concurrency,
            "peak_rss_mib": peak_rss,
        },
    )


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


@contextlib.asynccontextmanager
async def fresh_database(dsn: str) -> AsyncIterator[str]:
    """A new database on the server of ``dsn``, migrated; dropped on exit."""
    from pgqueue import migrate  # not at the top: `pgqueue work` imports every command's module

    name = f"pgqueue_bench_{uuid4().hex[:12]}"  # made here, so safe to put in the statement
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            fresh = _with_database(dsn, name)
            await migrate.upgrade(fresh)
            yield fresh
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise BenchmarkFailed("pgqueue bench needs a postgresql:// URL as its DSN")
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _expect_rows(queue: Queue, jobs: int) -> None:
    stats = await queue.stats(BENCH_QUEUE)
    if stats.pending + stats.scheduled != jobs:
        raise BenchmarkFailed(f"{stats.pending + stats.scheduled} rows for {jobs} enqueued jobs")


async def _machine(dsn: str) -> dict[str, Any]:
    connection = await asyncpg.connect(dsn)
    try:
        server = await connection.fetchval("SHOW server_version")
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
