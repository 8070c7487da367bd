"""What a benchmarked system provides, and the one thing every no-op handler does.

Worker processes import this module, so it imports nothing beyond the standard library: a
worker's peak RSS is one of the figures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

START_LOG = "BENCHMARKS_START_LOG"  # names the file handlers append their starts to
BATCH = 1000  # jobs per batch enqueue call, for every system
REPOSITORY = Path(__file__).resolve().parents[1]  # on PYTHONPATH of children and workers

# The workloads, named as ``pgqueue bench`` names them; a processing run's worker processes.
WORKLOADS = ("single_enqueue", "batch_enqueue", "process_1_worker", "process_2_workers", "latency")
WORKER_PROCESSES = {"process_1_worker": 1, "process_2_workers": 2}

T = TypeVar("T")


class BenchmarkFailed(RuntimeError):
    """A run did not do what it measured (rows missing, a job run twice, a deadline passed)."""


@dataclass(frozen=True)
class Settings:
    """What one run of a workload is asked to do."""

    jobs: int  # enqueued by the enqueue workloads, processed by the processing ones
    latency_samples: int
    deadline: float  # seconds any one wait inside a run may take


@dataclass
class Result:
    """One run's figure; the same shape as ``pgqueue.bench.run.Result``."""

    workload: str
    value: float
    unit: str
    details: dict[str, Any] = field(default_factory=dict)


class Producer(Protocol):
    """A client of one system on one database, for enqueueing and for counting rows."""

    async def enqueue(self, number: int) -> str:
        """Enqueue job ``number`` (committed on return); the key its handler will log."""

    async def enqueue_batch(self, numbers: range) -> None:
        """Enqueue one job per number with the system's batch API, in one call."""

    async def count_unfinished(self) -> int:
        """Jobs enqueued and not completed: waiting, or running."""

    async def count_completed(self) -> int:
        """Jobs whose handler ran and whose completion is recorded."""


class Peer(Protocol):
    """A system measured by ``benchmarks.workloads``: a schema, a producer, a worker command."""

    uses_uvloop: bool  # the producer's event loop (workers choose their own)

    def configuration(self) -> dict[str, Any]:
        """The settings this module runs the system with, for the report."""

    async def install(self, dsn: str) -> None:
        """Create the system's schema in the empty database ``dsn``, through its own API."""

    def producer(self, dsn: str) -> AbstractAsyncContextManager[Producer]:
        """A connected producer (closed on exit)."""

    def worker_command(self, dsn: str) -> list[str]:
        """The command line of one worker process, which stops cleanly on SIGTERM."""


class System(Protocol):
    """What the child process needs of a system: its schema, its workloads, its settings."""

    uses_uvloop: bool  # the client side's event loop (workers choose their own)

    def configuration(self) -> dict[str, Any]:
        """The settings this module runs the system with, for the report."""

    async def install(self, dsn: str) -> None:
        """Create the system's schema in the empty database ``dsn``, through its own API."""

    async def run(self, workload: str, dsn: str, settings: Settings) -> Result:
        """Run one workload on the installed database ``dsn``."""


class StartLog:
    """A handler's whole job: append ``<key> <monotonic ns>`` to the file named by START_LOG.

    One ``os.write`` of a few bytes (about a microsecond); CLOCK_MONOTONIC is system-wide, so the
    driver compares these times with its own commit times.
    """

    def __init__(self) -> None:
        self._fd = os.open(os.environ[START_LOG], os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def note(self, key: object) -> None:
        os.write(self._fd, f"{key} {time.monotonic_ns()}\n".encode())


def module_command(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def run_event_loop(main: Coroutine[Any, Any, T], *, uvloop: bool) -> T:
    """Run ``main`` on uvloop when asked and installed, else on asyncio's own loop."""
    if uvloop and has_uvloop():
        import uvloop as uvloop_module

        return uvloop_module.run(main)
    return asyncio.run(main)


def has_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def event_loop_name(*, uvloop: bool) -> str:
    return "uvloop" if uvloop and has_uvloop() else "asyncio"
