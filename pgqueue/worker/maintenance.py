"""Housekeeping every live worker does, so no job stays ``running`` without a living owner.

- Rescue: jobs held by a worker whose lease ran out (each worker declares its own) go back to
  pending (the attempt counted) or to failed if it was their last attempt; the dead workers'
  rows are removed.
- Reconcile: jobs running under this worker that it does not hold (a claim that committed
  while its reply was lost with the connection) go back to pending.
- Prune: finished jobs past their retention are deleted, a few small batches per round, by one
  worker at a time.
- Cancels: jobs this worker holds that were cancelled are stopped (how cancel requests reach a
  worker that does not LISTEN, and a backstop for a missed notification).
Several workers may run it at once: the rescue skips rows another one has locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from uuid import UUID

from pgqueue.store import JobStore

log = logging.getLogger("pgqueue.worker")

# A claim this worker made within this window may not have reached its memory yet (one claim is
# in flight at a time, and takes milliseconds).
_CLAIM_IN_FLIGHT = timedelta(seconds=10)


class Maintenance:
    def __init__(
        self,
        store: JobStore,
        *,
        worker_id: UUID,
        heartbeat_timeout: timedelta,
        interval: timedelta,
        default_max_attempts: int,
        held_ids: Callable[[], Collection[int]],
        on_released: Callable[[], None],
        on_rescued: Callable[[int], None],
        on_cancelled: Callable[[int], None],
        prune: Callable[[], Awaitable[object]] | None,
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._heartbeat_timeout = heartbeat_timeout
        self._interval = interval.total_seconds()
        self._default_max_attempts = default_max_attempts
        self._held_ids = held_ids
        self._on_released = on_released
        self._on_rescued = on_rescued
        self._on_cancelled = on_cancelled
        self._prune = prune
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pgqueue-maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> list[int]:
        """One round; returns the ids of the jobs it put back to pending or failed."""
        rescued = await self._store.rescue_expired_jobs(
            heartbeat_timeout=self._heartbeat_timeout,
            default_max_attempts=self._default_max_attempts,
        )
        if rescued:
            log.warning(
                "rescued %s jobs from workers whose lease ran out: %s", len(rescued), rescued
            )
            self._on_rescued(len(rescued))
        await self._store.delete_expired_workers(heartbeat_timeout=self._heartbeat_timeout)
        released = await self._store.release_unheld_jobs(
            worker_id=self._worker_id,
            held_ids=list(self._held_ids()),
            claimed_before=_CLAIM_IN_FLIGHT,
        )
        if released:
            log.warning(
                "released %s jobs claimed by this worker but never received: %s",
                len(released),
                released,
            )
        if rescued or released:
            self._on_released()
        held = list(self._held_ids())
        for job_id in await self._store.cancelled_among(ids=held) if held else []:
            self._on_cancelled(job_id)
        if self._prune is not None:
            await self._prune()
        return rescued + released

    async def _run(self) -> None:
        while True:
            # Jittered, so workers started together do not rescue in lockstep.
            await asyncio.sleep(self._interval * random.uniform(0.5, 1.5))
            try:
                await self.run_once()
            except Exception as error:
                log.warning("maintenance failed (%s); retrying next round", error)
