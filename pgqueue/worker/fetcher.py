"""The fetch loop: keep every slot busy and a few claimed jobs ready, else sleep until something
may be due.

Claims run ahead of the slots by ``prefetch`` jobs: while the running jobs finish, the next
ones are already claimed, so a freed slot starts its next job at once instead of waiting on a
round trip to the database. It sleeps until the first of: a NOTIFY for one of its queues, a slot
freeing up, the next known ``run_at`` (asked of the database clock), or ``poll_interval`` as the
backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from pgqueue.store import JobStore
from pgqueue.worker.dedicated import DedicatedConnection
from pgqueue.worker.executor import JobExecutor
from pgqueue.worker.slots import Slots

log = logging.getLogger("pgqueue.worker")

# Floor of a sleep while due jobs exist that we could not claim (another session locks them),
# so the loop never spins on them.
_MIN_SLEEP = 0.02
_MAX_ERROR_PAUSE = 5.0


class Fetcher:
    def __init__(
        self,
        store: JobStore,
        *,
        worker_id: UUID,
        queues: Sequence[str],
        job_types: Sequence[str],
        poll_interval: timedelta,
        prefetch: int,
        slots: Slots,
        executor: JobExecutor,
    ) -> None:
        self._store = store
        self._connection = DedicatedConnection(store)
        self._worker_id = worker_id
        self._queues = list(queues)
        self._job_types = list(job_types)
        self._poll_interval = poll_interval.total_seconds()
        self._prefetch = prefetch
        self._slots = slots
        self._executor = executor
        self._nudge = asyncio.Event()
        slots.on_freed = self.slot_freed  # a job ended: start a ready one, claim more
        self.stopping = False

    def nudge(self) -> None:
        """Something changed (a notification, a freed slot): look again now."""
        self._nudge.set()

    def slot_freed(self) -> None:
        """A job finished: start a ready one in its place now, and claim more."""
        self._dispatch()
        self._nudge.set()

    def stop(self) -> None:
        """Claim and start nothing more; jobs still waiting are released with the others."""
        self.stopping = True
        self._slots.ready.clear()
        self._nudge.set()

    async def run(self) -> None:
        try:
            await self._fetch()
        finally:
            await self._connection.close()

    async def _fetch(self) -> None:
        error_pause = _MIN_SLEEP
        while not self.stopping:
            self._nudge.clear()  # before claiming: a NOTIFY that arrives meanwhile is kept
            wanted = self._slots.free() + self._prefetch - len(self._slots.ready)
            sleep: float | None = None  # slots busy and enough ready: wait for a slot
            if wanted > 0:
                try:
                    if await self._claim(wanted) == wanted:
                        continue  # all wanted were there, and more may be due
                    await asyncio.sleep(0)  # the jobs just started run before we ask more
                    sleep = await self._seconds_until_due()
                    error_pause = _MIN_SLEEP
                except Exception as error:  # the database is away: back off, then try again
                    error_pause = min(error_pause * 2, _MAX_ERROR_PAUSE, self._poll_interval)
                    log.warning("claiming jobs failed (%s); retrying in %.1fs", error, error_pause)
                    sleep = error_pause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), sleep)

    async def _claim(self, max_jobs: int) -> int:
        """Claim up to ``max_jobs`` due jobs and start as many as slots allow; returns how many
        were claimed."""
        async with self._connection.use() as connection:
            claimed = await self._store.claim_jobs(
                queues=self._queues,
                job_types=self._job_types,
                worker_id=self._worker_id,
                max_jobs=max_jobs,
                connection=connection,
            )
        self._slots.claimed(claimed)
        if self.stopping:  # stopped while claiming: they are released with the others
            return len(claimed)
        self._slots.ready.extend(claimed)
        self._dispatch()
        return len(claimed)

    def _dispatch(self) -> None:
        for _ in range(min(len(self._slots.ready), self._slots.free())):
            job = self._slots.ready.popleft()
            self._slots.start(job, self._executor.run(job))

    async def _seconds_until_due(self) -> float:
        async with self._connection.use() as connection:
            seconds = await self._store.seconds_until_next_job(
                queues=self._queues, job_types=self._job_types, connection=connection
            )
        if seconds is None:
            return self._poll_interval
        return min(max(seconds, _MIN_SLEEP), self._poll_interval)
