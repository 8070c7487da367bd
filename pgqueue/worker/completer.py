"""Writes job outcomes. Successes are buffered and written many per statement; failures at once.

A success is written by the next flush: while one flush is in flight, the next batch gathers,
so a busy worker writes large batches and an idle one adds no delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from uuid import UUID

from pgqueue.records import JobStatus
from pgqueue.store import ClaimedJob, JobStore

log = logging.getLogger("pgqueue.worker")

_RETRY_PAUSE = 1.0  # seconds between attempts to write outcomes while the database is away


class Completer:
    def __init__(self, store: JobStore, worker_id: UUID) -> None:
        self._store = store
        self._worker_id = worker_id
        self._pending: list[tuple[ClaimedJob, str | None]] = []
        self._has_pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pgqueue-completer")

    def complete(self, job: ClaimedJob, result: str | None) -> None:
        """Queue a success (``result`` as JSON text) for the next flush."""
        self._pending.append((job, result))
        self._has_pending.set()

    async def fail(
        self,
        job: ClaimedJob,
        *,
        error: str,
        last_error: str,
        retry_delay: timedelta,
        permanent: bool,
    ) -> JobStatus | None:
        """Record a failed attempt; returns the new status (None: the claim was lost)."""
        status = await self._store.fail_job(
            id=job.id,
            attempt=job.attempt,
            worker_id=self._worker_id,
            error=error,
            last_error=last_error,
            retry_delay=retry_delay,
            permanent=permanent,
        )
        if status is None:
            log.warning("job %s: failure not recorded, this worker no longer holds it", job.id)
        return status

    async def flush(self) -> None:
        """Write every buffered success."""
        while self._pending:
            batch, self._pending = self._pending, []
            self._has_pending.clear()
            try:
                written = await self._store.complete_jobs(
                    ids=[job.id for job, _ in batch],
                    attempts=[job.attempt for job, _ in batch],
                    results=[result for _, result in batch],
                    worker_id=self._worker_id,
                )
            except BaseException:
                self._pending[:0] = batch  # nothing was written: keep the batch for a retry
                self._has_pending.set()
                raise
            if len(written) < len(batch):
                lost = sorted({job.id for job, _ in batch} - set(written))
                log.warning("jobs %s: completion not recorded, claim lost", lost)

    async def _run(self) -> None:
        while True:
            await self._has_pending.wait()
            try:
                await self.flush()
            except Exception:
                log.warning("writing completions failed; retrying", exc_info=True)
                await asyncio.sleep(_RETRY_PAUSE)

    async def stop(self) -> None:
        """Stop the flush loop and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
