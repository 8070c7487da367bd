"""Housekeeping every live worker does, so no job stays ``running`` without a living owner.

Each round runs these steps in turn (a step that raises ends the round; the next round comes
as usual):

- Rescue, on every worker: jobs held by a worker whose lease ran out (each worker declares its
  own) go back to pending (the attempt counted) or to failed if it was their last attempt; the
  dead workers' rows are removed. Several workers may rescue at once: each skips the rows
  another one has locked.
- Reconcile, on every worker, for its own jobs: jobs running under this worker that it does not
  hold (a claim that committed while its reply was lost with the connection) go back to pending.
- Cancels, on every worker, for its own jobs: jobs this worker holds that were cancelled are
  stopped (how cancel requests reach a worker that does not LISTEN, and a backstop for a missed
  notification).
- Prune, on one elected worker at a time: finished jobs past their retention are deleted, a few
  small batches per round. Every worker with a retention tries; the batch that wins the
  advisory lock ``pgqueue.prune`` deletes, and the others delete nothing (``prune_jobs``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from pgqueue.pruning import WORKER_PRUNE_BATCH, prune_finished_jobs
from pgqueue.store import JobStore
from pgqueue.worker.config import WorkerSettings
from pgqueue.worker.service import Service
from pgqueue.worker.slots import Slots

log = logging.getLogger("pgqueue.worker")

# A claim this worker made within this window may not have reached its memory yet (one claim is
# in flight at a time, and takes milliseconds).
_CLAIM_IN_FLIGHT = timedelta(seconds=10)
_PRUNE_BATCHES = 10  # per round, so a large backlog never keeps maintenance busy for long


class Maintenance(Service[list[int]]):
    """Runs on every worker, every heartbeat interval (jittered); its prune step deletes on one
    elected worker at a time."""

    task_name = "pgqueue-maintenance"

    def __init__(
        self,
        store: JobStore,
        settings: WorkerSettings,
        *,
        worker_id: UUID,
        slots: Slots,
        on_released: Callable[[], None],
        on_rescued: Callable[[int], None],
    ) -> None:
        self._store = store
        self._settings = settings
        self._worker_id = worker_id
        self._interval = settings.heartbeat_interval.total_seconds()
        self._slots = slots
        self._on_released = on_released
        self._on_rescued = on_rescued

    async def run_once(self) -> list[int]:
        """One round; returns the ids of the jobs it put back to pending or failed."""
        rescued = await self._rescue()
        released = await self._reconcile()
        if rescued or released:
            self._on_released()
        await self._stop_cancelled()
        await self._prune()
        return rescued + released

    async def _rescue(self) -> list[int]:
        lease = self._settings.heartbeat_timeout
        rescued = await self._store.rescue_expired_jobs(
            heartbeat_timeout=lease, default_max_attempts=self._settings.default_max_attempts
        )
        if rescued:
            log.warning(
                "rescued %s jobs from workers whose lease ran out: %s", len(rescued), rescued
            )
            self._on_rescued(len(rescued))
        await self._store.delete_expired_workers(heartbeat_timeout=lease)
        return rescued

    async def _reconcile(self) -> list[int]:
        released = await self._store.release_unheld_jobs(
            worker_id=self._worker_id,
            held_ids=list(self._slots.held),
            claimed_before=_CLAIM_IN_FLIGHT,
        )
        if released:
            log.warning(
                "released %s jobs claimed by this worker but never received: %s",
                len(released),
                released,
            )
        return released

    async def _stop_cancelled(self) -> None:
        held = list(self._slots.held)
        for job_id in await self._store.cancelled_among(ids=held) if held else []:
            self._slots.cancel(job_id)

    async def _prune(self) -> None:
        if self._settings.retention is None:  # this worker does not prune
            return
        deleted = await prune_finished_jobs(
            self._store,
            self._settings.retention,
            batch_size=WORKER_PRUNE_BATCH,
            max_batches=_PRUNE_BATCHES,
        )
        if any(deleted.values()):
            log.info("pruned finished jobs: %s", {str(s): n for s, n in deleted.items() if n})

    def _jittered_interval(self) -> float:
        # Jittered, so workers started together do not rescue in lockstep.
        return self._interval * random.uniform(0.5, 1.5)

    def _first_pause(self) -> float:
        return self._jittered_interval()

    def _pause_after(self, outcome: list[int]) -> float:
        return self._jittered_interval()

    async def _failed(self, error: Exception) -> float:
        log.warning("maintenance failed (%s); retrying next round", error)
        return self._jittered_interval()
