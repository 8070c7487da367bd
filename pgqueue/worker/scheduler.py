"""Enqueues the ticks of the schedules this worker keeps, as each comes due.

Every worker runs one, and no leader is elected: each tick is one job however many workers
enqueue it (the schedule's row lock makes the others skip; a unique index on schedule name and
tick turns any duplicate into nothing). Time is the database's: a worker reads ``now()`` with
the schedules and sleeps until the next tick, or ``poll_interval`` at most so that schedules
added, changed or resumed elsewhere are seen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from pgqueue import cron
from pgqueue.errors import ConfigurationError
from pgqueue.rows import DueSchedule, Schedule
from pgqueue.store import JobStore
from pgqueue.worker.service import ErrorPause, Service

log = logging.getLogger("pgqueue.worker")

_MIN_SLEEP = 0.01  # a tick that is not quite due yet on the database clock: look again soon
_MAX_ERROR_PAUSE = 5.0


class Scheduler(Service[float]):
    """Runs on every worker: each enqueues the due ticks, and the database keeps them single."""

    task_name = "pgqueue-scheduler"

    def __init__(
        self, store: JobStore, *, declared: Sequence[Schedule], poll_interval: timedelta
    ) -> None:
        self._store = store
        self._declared = list(declared)
        self._poll_interval = poll_interval.total_seconds()
        self._error_pause = ErrorPause(first=_MIN_SLEEP, least=0.1, longest=_MAX_ERROR_PAUSE)

    async def start(self) -> None:
        """Write the schedules declared in code to the database, then start enqueueing."""
        for schedule in self._declared:
            if not await self._store.save_schedule(schedule=schedule, in_code=True):
                raise ConfigurationError(
                    f"schedule {schedule.name!r} is declared with @schedule, but one of that name "
                    "was added with add_schedule: delete it (pgqueue schedules delete) or rename"
                )
        await super().start()

    async def run_once(self) -> float:
        """Enqueue every due tick; returns the seconds until the next tick (at most the poll
        interval)."""
        now, schedules = await self._store.due_schedules(
            declared_names=[schedule.name for schedule in self._declared]
        )
        sleep = self._poll_interval
        for schedule in schedules:
            try:
                upcoming = await self._enqueue_due_ticks(schedule, now)
            except (ValueError, LookupError) as error:  # a cron croniter cannot follow
                log.error("schedule %s: cannot compute its ticks (%s)", schedule.name, error)
                continue
            sleep = min(sleep, (upcoming - now).total_seconds())
        return max(sleep, _MIN_SLEEP)

    async def _enqueue_due_ticks(self, schedule: DueSchedule, now: datetime) -> datetime:
        """Enqueue the schedule's due ticks; returns its next tick."""
        ticks, done_until = cron.due_ticks(
            schedule.cron,
            schedule.timezone,
            after=schedule.ticks_after,
            now=now,
            missed=schedule.missed,
        )
        if done_until is not None:
            enqueued = await self._store.enqueue_schedule_ticks(
                name=schedule.name,
                seen_updated_at=schedule.updated_at,
                ticks=ticks,
                done_until=done_until,
            )
            if enqueued:
                log.info("schedule %s: enqueued jobs %s", schedule.name, enqueued)
        return cron.next_tick(
            schedule.cron, schedule.timezone, max(now, done_until or schedule.ticks_after)
        )

    def _pause_after(self, outcome: float) -> float:
        self._error_pause.reset()
        return outcome

    async def _failed(self, error: Exception) -> float:
        pause = self._error_pause.lengthen()
        log.warning("enqueueing schedule ticks failed (%s); retrying in %.1fs", error, pause)
        return pause
