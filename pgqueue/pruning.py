"""Deleting finished jobs past their retention, a batch at a time: the body of ``Queue.prune()``
and of the worker's pruner, kept below both so it is written once.

One pruner at a time: while another session prunes (``prune_jobs`` takes a transaction-scoped
advisory lock), a batch deletes nothing.
"""

from __future__ import annotations

import itertools

from pgqueue.records import JobStatus
from pgqueue.retention import Retention
from pgqueue.store import JobStore

WORKER_PRUNE_BATCH = 1000  # the batch a worker prunes with, a few per maintenance round


async def prune_finished_jobs(
    store: JobStore,
    retention: Retention,
    *,
    batch_size: int,
    max_batches: int | None,
) -> dict[JobStatus, int]:
    """Delete finished jobs older than their retention, in batches of ``batch_size`` (at most
    ``max_batches`` per status); returns how many of each status were deleted."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    deleted: dict[JobStatus, int] = {}
    for status, period in retention.periods():
        deleted[status] = 0
        for _ in itertools.count() if max_batches is None else range(max_batches):
            count = await store.prune_jobs(status=status, older_than=period, batch_size=batch_size)
            deleted[status] += count
            if count < batch_size:
                break
    return deleted
