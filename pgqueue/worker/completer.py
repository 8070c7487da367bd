"""Writes job outcomes, and keeps trying while the database is away.

Successes are buffered and written many per statement: while one write is in flight the next
batch gathers, so a busy worker writes large batches and an idle one adds no delay. Failures
and snoozes are written one by one, in the job's own task. Every write is fenced by worker and
attempt; ``on_written`` hears of each job whose outcome reached the database (or was fenced out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import TypeVar
from uuid import UUID

from pgqueue.records import JobStatus
from pgqueue.rows import ClaimedJob
from pgqueue.store import JobStore
from pgqueue.worker.dedicated import DedicatedConnection

log = logging.getLogger("pgqueue.worker")

T = TypeVar("T")
_MAX_PAUSE = 5.0  # seconds between attempts to write while the database is away


class Completer:
    def __init__(
        self,
        store: JobStore,
        worker_id: UUID,
        *,
        default_max_attempts: int,
        on_written: Callable[[Iterable[int]], None],
    ) -> None:
        self._store = store
        self._connection = DedicatedConnection(store)
        self._worker_id = worker_id
        self._default_max_attempts = default_max_attempts
        self._on_written = on_written
        self._pending: list[tuple[ClaimedJob, str | None]] = []
        self._has_pending = asyncio.Event()
        self._writing = asyncio.Lock()  # held while a batch is in flight
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pgqueue-completer")

    def complete(self, job: ClaimedJob, result: str | None) -> None:
        """Queue a success (``result`` as JSON text) for the next flush."""
        self._pending.append((job, result))
        self._has_pending.set()

    def completed_elsewhere(self, job: ClaimedJob) -> None:
        """The job's own transaction recorded its completion (context.transaction())."""
        self._on_written([job.id])

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
        status = await self._persist(
            job.id,
            lambda: self._store.fail_job(
                id=job.id,
                attempt=job.attempt,
                worker_id=self._worker_id,
                error=error,
                last_error=last_error,
                retry_delay=retry_delay,
                permanent=permanent,
                default_max_attempts=self._default_max_attempts,
            ),
        )
        if status is None:
            log.warning("job %s: failure not recorded, this worker no longer holds it", job.id)
        return status

    async def snooze(self, job: ClaimedJob, delay: timedelta) -> None:
        """The job asked to run again after ``delay``, its attempt not counted."""
        snoozed = await self._persist(
            job.id,
            lambda: self._store.snooze_job(
                id=job.id, attempt=job.attempt, worker_id=self._worker_id, delay=delay
            ),
        )
        if not snoozed:
            log.warning("job %s: snooze not recorded, this worker no longer holds it", job.id)

    async def _persist(self, job_id: int, write: Callable[[], Awaitable[T]]) -> T:
        """Run ``write`` until it succeeds (the database may be restarting), unless stopping."""
        pause = 0.1
        while True:
            try:
                outcome = await write()
            except Exception as error:
                if self._stopping:
                    raise
                log.warning(
                    "job %s: cannot write its outcome (%s); retrying in %.1fs", job_id, error, pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
            else:
                self._on_written([job_id])
                return outcome

    async def flush(self) -> None:
        """Write every buffered success."""
        async with self._writing:
            await self._write_pending()

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            self._has_pending.clear()
            try:
                async with self._connection.use() as connection:
                    written = await self._store.complete_jobs(
                        ids=[job.id for job, _ in batch],
                        attempts=[job.attempt for job, _ in batch],
                        results=[result for _, result in batch],
                        worker_id=self._worker_id,
                        connection=connection,
                    )
            except BaseException:
                self._pending[:0] = batch  # nothing was written: keep the batch for a retry
                self._has_pending.set()
                raise
            self._on_written(job.id for job, _ in batch)
            if len(written) < len(batch):
                lost = sorted({job.id for job, _ in batch} - set(written))
                log.warning("jobs %s: completion not recorded, claim lost", lost)

    async def _run(self) -> None:
        pause = 0.1
        while True:
            await self._has_pending.wait()
            try:
                await self.flush()
                pause = 0.1
            except Exception as error:
                log.warning("cannot write completions (%s); retrying in %.1fs", error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)

    async def stop(self) -> None:
        """Stop the flush loop and make a last attempt at writing what is left."""
        self._stopping = True
        if self._task is not None:
            # Never while a batch is in flight: its rows may be written by the time the reply
            # is lost to the cancellation, and the batch would be sent again.
            async with self._writing:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        finally:
            await self._connection.close()
