"""What every workload of ``pgqueue bench`` shares: the result it reports, the ``pgqueue work``
processes it starts and the start log their handlers write, deadline waits, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg

from pgqueue.bench.jobs import BENCH_QUEUE, LOG_VARIABLE, Noop
from pgqueue.queue import Queue
from pgqueue.store import BenchStore

DEADLINE = 600.0  # seconds any one workload may take before the run is called failed
SETTLE = 1.5  # seconds an idle worker gets before latency samples are taken


class BenchmarkFailed(RuntimeError):
    """A workload did not do what it measured (rows missing, a job run twice, a timeout)."""


@dataclass
class Result:
    workload: str
    value: float
    unit: str
    details: dict[str, Any] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def fresh_database(dsn: str) -> AsyncIterator[str]:
    """A new database on the server of ``dsn``, migrated; dropped on exit."""
    from pgqueue import migrate  # not at the top: `pgqueue work` imports every command's module

    name = f"pgqueue_bench_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    try:
        store = BenchStore(admin)
        await store.create_database(name)
        try:
            fresh = _with_database(dsn, name)
            await migrate.upgrade(fresh)
            yield fresh
        finally:
            await store.drop_database(name)
    finally:
        await admin.close()


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise BenchmarkFailed("pgqueue bench needs a postgresql:// URL as its DSN")
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def running_workers(
    dsn: str, log: Path, processes: int, concurrency: int, *, options: Sequence[str] = ()
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``processes`` separate ``pgqueue work`` processes on the bench queue (``options`` added
    to their command line), started side by side as the peers' workers are (not through
    ``--workers``, whose supervisor would add an interpreter start to the clock), stopped with
    SIGTERM on leaving; each handler start is appended to ``log``."""
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
        "--log-level",
        "warning",
        *options,
    ]
    environment = {**os.environ, LOG_VARIABLE: str(log)}
    workers = [subprocess.Popen(command, env=environment) for _ in range(processes)]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


async def wait_until(probe: Callable[[], Awaitable[int]], target: int, *, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while (found := await probe()) < target:
        if time.monotonic() > deadline:
            raise BenchmarkFailed(f"only {found} of {target} {what} after {DEADLINE:.0f}s")
        await asyncio.sleep(0.01)


async def registered_workers(queue: Queue) -> int:
    return len(await queue.workers())


async def wait_for_start(log: Path, job_id: int) -> int:
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


async def logged_starts(log: Path) -> int:
    """How many handler starts the log holds so far: counted in the file, not the database,
    so watching the work costs the server nothing."""
    return log.read_bytes().count(b"\n") if log.exists() else 0  # noqa: ASYNC240 - a local file


def handler_starts(log: Path) -> list[tuple[int, int]]:
    """Every ``(job id, monotonic ns)`` the handlers logged, in the order they wrote them."""
    starts = []
    for line in log.read_text().splitlines():
        job_id, at = line.split()
        starts.append((int(job_id), int(at)))
    return starts


def peak_rss_mib(workers: Sequence[subprocess.Popen[bytes]]) -> float:
    """The largest peak RSS among the worker processes."""
    return round(max(_vm_hwm_kib(worker.pid) for worker in workers) / 1024, 1)


@contextlib.asynccontextmanager
async def streaming(queue: Queue, commits: dict[int, int], rate: float) -> AsyncIterator[None]:
    """Enqueue no-op jobs at ``rate`` a second until the block ends, noting in ``commits`` when
    each one committed (monotonic ns)."""
    stop = asyncio.Event()
    stream = asyncio.create_task(_stream(queue, commits, rate, stop))
    try:
        yield
    finally:
        stop.set()
        await stream


async def _stream(queue: Queue, commits: dict[int, int], rate: float, stop: asyncio.Event) -> None:
    interval_ns = 1e9 / rate
    due = float(time.monotonic_ns())
    while not stop.is_set():
        job_id = await queue.enqueue(Noop())
        commits[job_id] = time.monotonic_ns()
        # On a fixed schedule, so sleeps that overshoot are made up for; but a stall longer than
        # a few intervals is not, since catching up on it would be a burst.
        due = max(due + interval_ns, time.monotonic_ns() - 5 * interval_ns)
        await asyncio.sleep((due - time.monotonic_ns()) / 1e9)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": ordered[-1]}


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
