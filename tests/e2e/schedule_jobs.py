"""Job classes declared with ``@schedule``, for subprocess workers only:
``pgqueue work --app tests.e2e.schedule_jobs``.

Never import this module from a test: ``@schedule`` registers in the global registry, and
every in-process Worker of the test session would then keep (and enqueue) these schedules.
tests/e2e/test_schedules.py names them by the strings below instead.
"""

from __future__ import annotations

from pgqueue import Job, schedule

QUEUE = "schedules"


@schedule("* * * * * *", name="every-second")
class EverySecond(Job, queue=QUEUE):
    """Ticks every second (six fields, leading seconds); the job only has to run."""

    async def handle(self) -> int:
        return self.context.job_id


@schedule("0 * * * * *", name="each-minute-at-00")
@schedule("30 * * * * *", name="each-minute-at-30")
class EachMinute(Job, queue=QUEUE):
    """Ticks once a minute, at second 0 and (another schedule) at second 30: a test picks the
    one whose next tick is at least 30 seconds away."""

    async def handle(self) -> int:
        return self.context.job_id
