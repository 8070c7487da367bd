"""The benchmark's job: a no-op that notes when it started, for counting and for latency.

Imported by the worker processes (``--app pgqueue.bench.jobs``). Each start appends
``<job id> <CLOCK_MONOTONIC ns>`` to the file named by ``PGQUEUE_BENCH_LOG``: one ``write`` of a
few bytes, so it barely costs the handler anything, and the system-wide monotonic clock lets the
driver compare it with its own commit times.
"""

from __future__ import annotations

import os
import time

from pgqueue.job import Job

BENCH_QUEUE = "pgqueue-bench"
LOG_VARIABLE = "PGQUEUE_BENCH_LOG"

_log_fd: int | None = None


class Noop(Job, name="pgqueue.bench.noop", queue=BENCH_QUEUE):
    async def handle(self) -> None:
        global _log_fd
        if _log_fd is None:
            _log_fd = os.open(os.environ[LOG_VARIABLE], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(_log_fd, f"{self.context.job_id} {time.monotonic_ns()}\n".encode())
