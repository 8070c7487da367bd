"""The ``process`` workload: N no-op jobs enqueued first, then ``pgqueue work`` processes started
and timed until the last one completes, checked by counting completed rows and handler starts."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import asyncpg

from pgqueue.bench.harness import (
    BenchmarkFailed,
    Result,
    handler_starts,
    logged_starts,
    peak_rss_mib,
    running_workers,
    wait_until,
)
from pgqueue.bench.jobs import Noop
from pgqueue.bench.rows import count_completed_between
from pgqueue.queue import Queue

BATCH = 1000  # jobs per enqueue_batch call


async def process(
    dsn: str, jobs: int, worker_processes: int, concurrency: int, options: Sequence[str] = ()
) -> Result:
    """From starting ``pgqueue work`` (``options`` added to its command line) to the last of
    ``jobs`` pre-enqueued jobs completing."""
    ids: list[int] = []
    async with Queue.connect(dsn, max_size=1) as queue:
        for first in range(0, jobs, BATCH):
            ids += await queue.enqueue_batch([Noop() for _ in range(min(BATCH, jobs - first))])
    # Progress is counted over these ids alone, so finished jobs already in the table cost the
    # probe nothing (counting the whole queue would scan them all, 100 times a second).
    connection = await asyncpg.connect(dsn)
    try:
        with tempfile.TemporaryDirectory() as directory:
            log = Path(directory) / "starts.log"
            started = time.monotonic()
            with running_workers(
                dsn, log, worker_processes, concurrency, options=options
            ) as workers:
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
