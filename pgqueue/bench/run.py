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
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg

from pgqueue.bench.jobs import BENCH_QUEUE, LOG_VARIABLE, Noop
from pgqueue.queue import Queue

_BATCH = 1000  # jobs per enqueue_batch call
_SETTLE = 1.5  # seconds an idle worker gets before latency samples are taken
_DEADLINE = 600.0  # seconds any one workload may take before the run is called failed


class BenchmarkFailed(RuntimeError):
    """A workload did not do what it measured (rows missing, a job run twice, a timeout)."""


@dataclass(frozen=True)
class Settings:
    jobs: int = 20_000  # processed per run of the processing workload
    enqueue_jobs: int = 20_000  # per enqueue workload
    worker_processes: Sequence[int] = (1, 2)
    concurrency: int = 100
    latency_samples: int = 200


@dataclass
class Result:
    workload: str
    value: float
    unit: str
    details: dict[str, Any] = field(default_factory=dict)


async def run_all(dsn: str, settings: Settings) -> dict[str, Any]:
    """Every workload, each on a fresh database; with the machine and versions."""
    results = [
        await _on_fresh_database(dsn, lambda d: single_enqueue(d, settings.enqueue_jobs)),
        await _on_fresh_database(dsn, lambda d: batch_enqueue(d, settings.enqueue_jobs)),
    ]
    for processes in settings.worker_processes:
        results.append(
            await _on_fresh_database(
                dsn,
                partial(
                    process,
                    jobs=settings.jobs,
                    worker_processes=processes,
                    concurrency=settings.concurrency,
                ),
            )
        )
    results.append(await _on_fresh_database(dsn, lambda d: latency(d, settings.latency_samples)))
    return {
        "machine": await _machine(dsn),
        "settings": {
            "jobs": settings.jobs,
            "enqueue_jobs": settings.enqueue_jobs,
            "concurrency": settings.concurrency,
            "latency_samples": settings.latency_samples,
        },
        "results": [result.__dict__ for result in results],
    }


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
    async with Queue.connect(dsn, max_size=1) as queue:
        for first in range(0, jobs, _BATCH):
            await queue.enqueue_batch([Noop() for _ in range(min(_BATCH, jobs - first))])
        with tempfile.TemporaryDirectory() as directory:
            log = Path(directory) / "starts.log"
            started = time.monotonic()
            with _workers(dsn, log, worker_processes, concurrency) as worker:
                await _wait_until(lambda: _completed(queue), jobs, what="jobs completed")
                elapsed = time.monotonic() - started
                peak_rss = _peak_rss_mib(worker, worker_processes)
            starts = [line.split()[0] for line in log.read_text().splitlines()]
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


async def latency(dsn: str, samples: int) -> Result:
    """Commit of an enqueue to the first line of its handler, on an idle worker."""
    delays_ms: list[float] = []
    async with Queue.connect(dsn, max_size=1) as queue:
        with tempfile.TemporaryDirectory() as directory:
            log = Path(directory) / "starts.log"
            log.touch()
            with _workers(dsn, log, 1, 10):
                await _wait_until(lambda: _registered_workers(queue), 1, what="worker registered")
                await asyncio.sleep(_SETTLE)  # let it go idle: a benchmark, not a test
                for _ in range(samples):
                    job_id = await queue.enqueue(Noop())
                    committed = time.monotonic_ns()
                    started = await _wait_for_start(log, job_id)
                    delays_ms.append((started - committed) / 1e6)
                    await asyncio.sleep(random.uniform(0.02, 0.1))
    return Result(
        "latency",
        statistics.median(delays_ms),
        "ms (p50)",
        {"samples": samples, **_percentiles(delays_ms)},
    )


# --- helpers -------------------------------------------------------------------------------


async def _on_fresh_database(dsn: str, workload: Callable[[str], Awaitable[Result]]) -> Result:
    async with _fresh_database(dsn) as fresh:
        return await workload(fresh)


@contextlib.asynccontextmanager
async def _fresh_database(dsn: str) -> AsyncIterator[str]:
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


@contextlib.contextmanager
def _workers(
    dsn: str, log: Path, processes: int, concurrency: int
) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable,
        "-m",
        "pgqueue",
        "work",
        "--app",
        "pgqueue.bench.jobs",
        "--queues",
        BENCH_QUEUE,
        "--dsn",
        dsn,
        "--concurrency",
        str(concurrency),
        "--workers",
        str(processes),
        "--log-level",
        "warning",
    ]
    worker = subprocess.Popen(command, env={**os.environ, LOG_VARIABLE: str(log)})
    try:
        yield worker
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def _wait_until(probe: Callable[[], Awaitable[int]], target: int, *, what: str) -> None:
    deadline = time.monotonic() + _DEADLINE
    while (found := await probe()) < target:
        if time.monotonic() > deadline:
            raise BenchmarkFailed(f"only {found} of {target} {what} after {_DEADLINE:.0f}s")
        await asyncio.sleep(0.01)


async def _completed(queue: Queue) -> int:
    return (await queue.stats(BENCH_QUEUE)).completed


async def _registered_workers(queue: Queue) -> int:
    return len(await queue.workers())


async def _expect_rows(queue: Queue, jobs: int) -> None:
    stats = await queue.stats(BENCH_QUEUE)
    if stats.pending + stats.scheduled != jobs:
        raise BenchmarkFailed(f"{stats.pending + stats.scheduled} rows for {jobs} enqueued jobs")


async def _wait_for_start(log: Path, job_id: int) -> int:
    """The monotonic time (ns) at which the handler of ``job_id`` started."""
    prefix = f"{job_id} "
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # A local file of a few KB, and this loop has nothing else to do meanwhile.
        for line in log.read_text().splitlines()[-5:]:  # noqa: ASYNC240
            if line.startswith(prefix):
                return int(line.split()[1])
        await asyncio.sleep(0.001)
    raise BenchmarkFailed(f"job {job_id} did not start within 30 s")


def _peak_rss_mib(worker: subprocess.Popen[bytes], processes: int) -> float:
    """The largest peak RSS among the worker processes (the supervisor's children if N > 1)."""
    pids = [worker.pid] if processes == 1 else _children(worker.pid)
    peaks = [_vm_hwm_kib(pid) for pid in pids]
    return round(max(peaks) / 1024, 1) if peaks else 0.0


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": ordered[-1]}


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
