"""The Queue's schedules: add one, list them, pause, resume and delete one."""

from __future__ import annotations

from pgqueue.errors import InvalidJob, ScheduleNotFound
from pgqueue.job import Job
from pgqueue.records import MissedTicks, ScheduleRecord
from pgqueue.schedule import build_schedule
from pgqueue.store import JobStore


class Schedules:
    store: JobStore

    async def add_schedule(
        self,
        name: str,
        cron: str,
        job: Job,
        *,
        timezone: str = "UTC",
        missed: MissedTicks = "latest",
        queue: str | None = None,
        priority: int | None = None,
        max_retries: int | None = None,
    ) -> None:
        """Store a schedule that enqueues ``job`` (its fields as fixed arguments) at each tick
        of ``cron`` in ``timezone``; every worker keeps it. Adding it again updates it in place,
        keeping its paused state and its ticks."""
        schedule = build_schedule(
            name,
            cron,
            job,
            timezone=timezone,
            missed=missed,
            queue=queue,
            priority=priority,
            max_retries=max_retries,
        )
        if not await self.store.save_schedule(schedule=schedule, in_code=False):
            raise InvalidJob(
                f"schedule {name!r} is declared in code with @schedule: give this one another name"
            )

    async def schedules(self) -> list[ScheduleRecord]:
        """Every schedule, declared in code or added, with its next tick."""
        return await self.store.list_schedules()

    async def pause_schedule(self, name: str) -> None:
        """Enqueue nothing for this schedule until it is resumed."""
        if not _names_a_schedule(name) or not await self.store.set_schedule_paused(
            name=name, paused=True
        ):
            raise ScheduleNotFound(name)

    async def resume_schedule(self, name: str) -> None:
        """Go on from the next tick; the ticks that came due while paused are skipped."""
        if not _names_a_schedule(name) or not await self.store.set_schedule_paused(
            name=name, paused=False
        ):
            raise ScheduleNotFound(name)

    async def delete_schedule(self, name: str) -> None:
        """Delete a schedule (jobs it enqueued stay). One declared in code comes back when a
        worker that declares it starts."""
        if not _names_a_schedule(name) or not await self.store.delete_schedule(name=name):
            raise ScheduleNotFound(name)


def _names_a_schedule(name: str) -> bool:
    return "\x00" not in name  # text cannot hold NUL: no schedule is named so
