"""The fetch loop: fill free slots with claimed jobs, else sleep until something may be due.

It sleeps until the first of: a NOTIFY for one of its queues, a slot freeing up, the next
known ``run_at`` (asked of the database clock), or ``poll_interval`` as the backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from uuid import UUID

from pgqueue.store import ClaimedJob, JobStore

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
        free_slots: Callable[[], int],
        start_job: Callable[[ClaimedJob], None],
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._queues = list(queues)
        self._job_types = list(job_types)
        self._poll_interval = poll_interval.total_seconds()
        self._free_slots = free_slots
        self._start_job = start_job
        self._nudge = asyncio.Event()
        self.stopping = False

    def nudge(self) -> None:
        """Something changed (a notification, a freed slot): look again now."""
        self._nudge.set()

    def stop(self) -> None:
        self.stopping = True
        self._nudge.set()

    async def run(self) -> None:
        error_pause = _MIN_SLEEP
        while not self.stopping:
            self._nudge.clear()  # before claiming: a NOTIFY that arrives meanwhile is kept
            free = self._free_slots()
            sleep: float | None = None  # all slots busy: wait for one to free up
            if free > 0:
                try:
                    if await self.run_once(free) == free:
                        continue  # every slot filled and more may be due
                    sleep = await self._seconds_until_due()
                    error_pause = _MIN_SLEEP
                except Exception as error:  # the database is away: back off, then try again
                    error_pause = min(error_pause * 2, _MAX_ERROR_PAUSE, self._poll_interval)
                    log.warning("claiming jobs failed (%s); retrying in %.1fs", error, error_pause)
                    sleep = error_pause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), sleep)

    async def run_once(self, max_jobs: int) -> int:
        """Claim up to ``max_jobs`` due jobs and start them; returns how many were claimed."""
        claimed = await self._store.claim_jobs(
            queues=self._queues,
            job_types=self._job_types,
            worker_id=self._worker_id,
            max_jobs=max_jobs,
        )
        for job in claimed:
            self._start_job(job)
        return len(claimed)

    async def _seconds_until_due(self) -> float:
        seconds = await self._store.seconds_until_next_job(
            queues=self._queues, job_types=self._job_types
        )
        if seconds is None:
            return self._poll_interval
        return min(max(seconds, _MIN_SLEEP), self._poll_interval)
