"""``latency_during_prune``: how long claims wait while pruning deletes a backlog of old jobs.

One worker process runs a steady stream of no-op jobs that the driver enqueues at a fixed rate.
After a baseline, the driver deletes ``rows`` completed jobs that finished long ago with
``Queue.prune`` (the worker's batch of 1,000, but until none is left). Each streamed job's
latency, from its enqueue's commit to its handler's first line, is grouped by whether the commit
came before the prune or while it ran.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path

from pgqueue.bench import STREAM_RATE
from pgqueue.bench.harness import (
    SETTLE,
    BenchmarkFailed,
    Result,
    handler_starts,
    logged_starts,
    percentiles,
    registered_workers,
    running_workers,
    streaming,
    wait_until,
)
from pgqueue.bench.rows import count_finished_by, insert_finished_jobs
from pgqueue.pruning import WORKER_PRUNE_BATCH
from pgqueue.queue import Queue
from pgqueue.retention import Retention

_BASELINE = 5.0  # seconds of stream timed before the prune starts
_PRUNE_BATCH = WORKER_PRUNE_BATCH  # the batch a worker prunes with
_CONCURRENCY = 10  # as the idle-latency workload's worker
# A day past the default retention of completed jobs, so the prune takes every one.
_LONG_AGO = Retention().completed + timedelta(days=1)
# The worker keeps every finished job: pruning too, it would race the driver for the one-pruner
# lock, and a batch lost to it would end the driver's prune early.
_KEEP_FOREVER = ("--keep-completed", "0", "--keep-failed", "0", "--keep-cancelled", "0")


@dataclass
class _Timeline:
    """What the driver saw, in monotonic ns: each streamed job's enqueue commit and handler
    start, and when the prune ran."""

    commits: dict[int, int] = field(default_factory=dict)
    starts: list[tuple[int, int]] = field(default_factory=list)
    prune_started: int = 0
    prune_finished: int = 0

    def phase(self, name: str, first: int, last: int) -> dict[str, float]:
        """Latency figures of the jobs committed from ``first`` to ``last``, named ``name_*``."""
        delays_ms = [
            (at - self.commits[job_id]) / 1e6
            for job_id, at in self.starts
            if first <= self.commits[job_id] <= last
        ]
        seconds = (last - first) / 1e9
        if not delays_ms:
            raise BenchmarkFailed(
                f"no job committed {name} the prune: {seconds * 1000:.0f} ms is too short to time "
                f"a claim at {STREAM_RATE} jobs/s; prune more rows"
            )
        return {
            f"{name}_samples": len(delays_ms),
            f"{name}_rate": round(len(delays_ms) / seconds),  # jobs/s the stream achieved
            **{f"{name}_{key}": value for key, value in percentiles(delays_ms).items()},
        }


async def latency_during_prune(dsn: str, rows: int) -> Result:
    """Enqueue-to-start latency of a steady stream of jobs before and while ``Queue.prune``
    deletes ``rows`` old completed jobs; checked by counting the rows left and the starts."""
    started = time.monotonic()
    newest = await insert_finished_jobs(dsn, rows, age=_LONG_AGO)
    fill_seconds = time.monotonic() - started
    timeline = _Timeline()
    deleted = await _prune_under_stream(dsn, timeline)
    left = await count_finished_by(dsn, newest)
    if deleted != rows or left != 0:
        raise BenchmarkFailed(f"the prune deleted {deleted} of {rows} old rows; {left} are left")
    started_ids = [job_id for job_id, _ in timeline.starts]
    if len(started_ids) != len(timeline.commits) or set(started_ids) != timeline.commits.keys():
        raise BenchmarkFailed(f"{len(started_ids)} starts for {len(timeline.commits)} jobs")
    before = timeline.phase("before", min(timeline.commits.values()), timeline.prune_started - 1)
    during = timeline.phase("during", timeline.prune_started, timeline.prune_finished)
    return Result(
        "latency_during_prune",
        during["during_p99_ms"],
        "ms (p99 during prune)",
        {
            "prune_rows": rows,
            "rows_deleted": deleted,
            "rows_left": left,
            "prune_seconds": round((timeline.prune_finished - timeline.prune_started) / 1e9, 3),
            "batch": _PRUNE_BATCH,
            "fill_seconds": round(fill_seconds, 2),
            "stream_rate": STREAM_RATE,
            **before,
            **during,
        },
    )


async def _prune_under_stream(dsn: str, timeline: _Timeline) -> int:
    """Stream jobs to a worker and, after the baseline, prune with the default retention;
    returns how many rows the prune deleted."""
    async with Queue.connect(dsn, max_size=1) as queue, Queue.connect(dsn, max_size=1) as pruner:
        with tempfile.TemporaryDirectory() as directory:
            log = Path(directory) / "starts.log"
            log.touch()
            with running_workers(dsn, log, 1, _CONCURRENCY, options=_KEEP_FOREVER):
                await wait_until(lambda: registered_workers(queue), 1, what="worker registered")
                await asyncio.sleep(SETTLE)  # let it go idle: a benchmark, not a test
                async with streaming(queue, timeline.commits, STREAM_RATE):
                    await asyncio.sleep(_BASELINE)
                    timeline.prune_started = time.monotonic_ns()
                    deleted = await pruner.prune(batch_size=_PRUNE_BATCH)
                    timeline.prune_finished = time.monotonic_ns()
                streamed = len(timeline.commits)
                await wait_until(
                    partial(logged_starts, log), streamed, what="streamed jobs started"
                )
            timeline.starts = handler_starts(log)
    return sum(deleted.values())
