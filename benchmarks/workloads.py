"""The workloads over any ``Peer``, measured as ``pgqueue.bench.run`` measures pgqueue.

- ``single_enqueue``: one awaited enqueue after another, jobs/s.
- ``batch_enqueue``: the system's batch API, 1,000 jobs a call, jobs/s.
- ``process_1_worker`` / ``process_2_workers``: N jobs enqueued first; the clock runs from
  spawning the worker processes to a 10 ms poll seeing all N completed in the database (the poll
  starts once all N handlers have started, so it does not load the database meanwhile). Checked:
  N completed rows, none unfinished, exactly N distinct handler starts. Peak RSS per worker.
- ``latency``: one idle worker (a warm-up job, then 1.5 s to settle); from the enqueue's commit
  to its handler's first line, random 20-100 ms gaps between samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from benchmarks.peer import (
    BATCH,
    REPOSITORY,
    START_LOG,
    WORKER_PROCESSES,
    BenchmarkFailed,
    Peer,
    Producer,
    Result,
    Settings,
)

_SETTLE = 1.5  # seconds an idle worker gets before latency samples are taken
_POLL = 0.01  # seconds between polls of the database
_SAMPLE_TIMEOUT = 30.0  # seconds one latency sample may take
_STOP_TIMEOUT = 30.0  # seconds a worker gets after SIGTERM before SIGKILL


class GenericSystem:
    """A ``System`` whose workloads are this module's, run over ``peer``."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.uses_uvloop = peer.uses_uvloop

    def configuration(self) -> dict[str, Any]:
        return self.peer.configuration()

    async def install(self, dsn: str) -> None:
        await self.peer.install(dsn)

    async def run(self, workload: str, dsn: str, settings: Settings) -> Result:
        if workload == "single_enqueue":
            return await single_enqueue(self.peer, dsn, settings)
        if workload == "batch_enqueue":
            return await batch_enqueue(self.peer, dsn, settings)
        if workload == "latency":
            return await latency(self.peer, dsn, settings)
        return await process(self.peer, dsn, settings, WORKER_PROCESSES[workload])


async def single_enqueue(peer: Peer, dsn: str, settings: Settings) -> Result:
    async with peer.producer(dsn) as producer:
        started = time.monotonic()
        for number in range(settings.jobs):
            await producer.enqueue(number)
        elapsed = time.monotonic() - started
        await _expect_unfinished(producer, settings.jobs)
    details = {"jobs": settings.jobs, "seconds": round(elapsed, 4)}
    return Result("single_enqueue", settings.jobs / elapsed, "jobs/s", details)


async def batch_enqueue(peer: Peer, dsn: str, settings: Settings) -> Result:
    async with peer.producer(dsn) as producer:
        started = time.monotonic()
        await _enqueue_in_batches(producer, settings.jobs)
        elapsed = time.monotonic() - started
        await _expect_unfinished(producer, settings.jobs)
    details = {"jobs": settings.jobs, "batch": BATCH, "seconds": round(elapsed, 4)}
    return Result("batch_enqueue", settings.jobs / elapsed, "jobs/s", details)


async def process(peer: Peer, dsn: str, settings: Settings, worker_processes: int) -> Result:
    """From spawning the worker processes to the last of ``jobs`` pre-enqueued jobs completing."""
    jobs = settings.jobs
    async with peer.producer(dsn) as producer:
        await _enqueue_in_batches(producer, jobs)
        await _expect_unfinished(producer, jobs)
        with (
            tempfile.TemporaryDirectory() as directory,
            contextlib.closing(StartLogReader(Path(directory) / "starts.log")) as starts,
        ):
            spawned = time.monotonic_ns()
            with WorkerProcesses(peer.worker_command(dsn), starts.path, worker_processes) as pool:
                await starts.wait_for_lines(jobs, _deadline(settings.deadline), pool)
                await _wait_until(producer.count_completed, jobs, settings, what="jobs completed")
                done = time.monotonic_ns()
                peaks = [_vm_hwm_mib(worker.pid) for worker in pool.processes]
            keys, times = starts.keys_and_times()
        unfinished = await producer.count_unfinished()
    if len(keys) != jobs or len(set(keys)) != jobs or unfinished:
        raise BenchmarkFailed(
            f"{len(keys)} handler starts ({len(set(keys))} distinct) for {jobs} jobs, "
            f"{unfinished} jobs unfinished"
        )
    elapsed = (done - spawned) / 1e9
    return Result(
        f"process_{worker_processes}_worker{'s' if worker_processes > 1 else ''}",
        jobs / elapsed,
        "jobs/s",
        {
            "jobs": jobs,
            "worker_processes": worker_processes,
            "peak_rss_mib": max(peaks),
            "peak_rss_mib_each": peaks,
            "seconds": round(elapsed, 4),
            "first_start_s": round((min(times) - spawned) / 1e9, 4),
            # First handler start to the last completion: the rate without process start-up.
            "steady_jobs_per_s": round(jobs / ((done - min(times)) / 1e9), 1),
            "worker_exit_codes": pool.exit_codes,
            "workers_killed": pool.killed,
        },
    )


async def latency(peer: Peer, dsn: str, settings: Settings) -> Result:
    """Commit of an enqueue to the first line of its handler, on an idle worker."""
    delays_ms: list[float] = []
    async with peer.producer(dsn) as producer:
        with (
            tempfile.TemporaryDirectory() as directory,
            contextlib.closing(StartLogReader(Path(directory) / "starts.log")) as starts,
            WorkerProcesses(peer.worker_command(dsn), starts.path, 1) as pool,
        ):
            # A warm-up job: the worker is up, connected and listening once it has run.
            warm_up = await producer.enqueue(-1)
            await starts.wait_for_key(warm_up, _deadline(settings.deadline), pool)
            await asyncio.sleep(_SETTLE)  # let it go idle: a benchmark, not a test
            for number in range(settings.latency_samples):
                key = await producer.enqueue(number)
                committed = time.monotonic_ns()
                started = await starts.wait_for_key(key, _deadline(_SAMPLE_TIMEOUT), pool)
                delays_ms.append((started - committed) / 1e6)
                await asyncio.sleep(random.uniform(0.02, 0.1))
    details: dict[str, Any] = {"samples": len(delays_ms), **percentiles(delays_ms)}
    details.update(worker_exit_codes=pool.exit_codes, workers_killed=pool.killed)
    return Result("latency", statistics.median(delays_ms), "ms (p50)", details)


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles, as ``pgqueue bench`` reports them."""
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": ordered[-1]}


class StartLogReader:
    """Reads the handlers' start log as it grows, without re-reading what it has seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        self._file: IO[bytes] = path.open("rb")
        self._partial = b""
        self._lines: list[bytes] = []
        self._searched = 0  # lines already searched by wait_for_key

    def close(self) -> None:
        self._file.close()

    def _read(self) -> None:
        complete = (self._partial + self._file.read()).split(b"\n")
        self._partial = complete.pop()
        self._lines.extend(complete)

    async def wait_for_lines(self, count: int, deadline: float, workers: WorkerProcesses) -> None:
        """Until ``count`` handlers have started, or the monotonic time ``deadline``."""
        while True:
            self._read()
            if len(self._lines) >= count:
                return
            workers.check_running()
            if time.monotonic() > deadline:
                raise BenchmarkFailed(f"{len(self._lines)} of {count} handlers started in time")
            await asyncio.sleep(_POLL)

    async def wait_for_key(self, key: str, deadline: float, workers: WorkerProcesses) -> int:
        """The monotonic time (ns) at which the handler of job ``key`` started."""
        prefix = f"{key} ".encode()
        while time.monotonic() < deadline:
            workers.check_running()
            self._read()
            for line in self._lines[self._searched :]:
                if line.startswith(prefix):
                    return int(line.split()[1])
            self._searched = len(self._lines)
            await asyncio.sleep(0.001)  # this loop has nothing else to do meanwhile
        raise BenchmarkFailed(f"job {key} did not start in time")

    def keys_and_times(self) -> tuple[list[bytes], list[int]]:
        self._read()
        pairs = [line.split() for line in self._lines]
        return [pair[0] for pair in pairs], [int(pair[1]) for pair in pairs]


class WorkerProcesses:
    """``count`` worker processes; on exit SIGTERM, then SIGKILL for any still running."""

    def __init__(self, command: list[str], start_log: Path, count: int) -> None:
        self._command = command
        self._environment = {
            **os.environ,
            START_LOG: str(start_log),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), _python_path()])),
        }
        self._count = count
        self.processes: list[subprocess.Popen[bytes]] = []
        self.exit_codes: list[int] = []
        self.killed = 0

    def __enter__(self) -> WorkerProcesses:
        for _ in range(self._count):
            self.processes.append(subprocess.Popen(self._command, env=self._environment))
        return self

    def check_running(self) -> None:
        """Fail at once, rather than at a deadline, when a worker has exited."""
        for worker in self.processes:
            if (code := worker.poll()) is not None:
                raise BenchmarkFailed(f"worker process {worker.pid} exited with code {code}")

    def __exit__(self, *exc_info: object) -> None:
        for worker in self.processes:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        for worker in self.processes:
            try:
                worker.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
                self.killed += 1
            self.exit_codes.append(worker.returncode)


def _deadline(seconds: float) -> float:
    return time.monotonic() + seconds


def _python_path() -> str:
    return os.environ.get("PYTHONPATH", "")


async def _enqueue_in_batches(producer: Producer, jobs: int) -> None:
    for first in range(0, jobs, BATCH):
        await producer.enqueue_batch(range(first, min(first + BATCH, jobs)))


async def _expect_unfinished(producer: Producer, jobs: int) -> None:
    if (unfinished := await producer.count_unfinished()) != jobs:
        raise BenchmarkFailed(f"{unfinished} jobs waiting for {jobs} enqueued")


async def _wait_until(
    probe: Callable[[], Awaitable[int]], target: int, settings: Settings, *, what: str
) -> None:
    deadline = time.monotonic() + settings.deadline
    while (found := await probe()) < target:
        if time.monotonic() > deadline:
            raise BenchmarkFailed(f"only {found} of {target} {what} after {settings.deadline:.0f}s")
        await asyncio.sleep(_POLL)


def _vm_hwm_mib(pid: int) -> float:
    """Peak resident set size of a running process, from /proc (Linux)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0
