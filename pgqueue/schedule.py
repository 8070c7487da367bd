"""Recurring jobs: ``@schedule`` on a Job class, and the Schedule a worker keeps in the database.

A schedule is a cron expression, a time zone and one job with fixed arguments. Schedules
declared in code are written to ``pgqueue.schedules`` by every worker that imports them (so
operators can list and pause them); those added with ``Queue.add_schedule`` live only there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from pgqueue import cron as cron_rules
from pgqueue.enqueue import prepare
from pgqueue.errors import InvalidJob
from pgqueue.job import Job
from pgqueue.options import EnqueueOptions
from pgqueue.records import MissedTicks
from pgqueue.registry import registry
from pgqueue.rows import Schedule

J = TypeVar("J", bound=type[Job])

_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")


def build_schedule(
    name: str,
    cron: str,
    job: Job,
    *,
    timezone: str = "UTC",
    missed: MissedTicks = "latest",
    queue: str | None = None,
    priority: int | None = None,
    max_retries: int | None = None,
) -> Schedule:
    """Validate everything about a schedule; raise InvalidJob naming what is wrong."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidJob(
            f"schedule name {name!r} must be 1 to 200 letters, digits or _ . : - characters"
        )
    try:
        expression = cron_rules.check_cron(cron)
        cron_rules.check_timezone(timezone)
        policy = cron_rules.check_missed(missed)
    except ValueError as error:
        raise InvalidJob(f"schedule {name!r}: {error}") from error
    row = prepare(job, EnqueueOptions(queue=queue, priority=priority, max_retries=max_retries))
    return Schedule(
        name=name,
        cron=expression,
        timezone=timezone,
        job_type=row.job_type,
        payload=row.payload,
        queue=row.queue,
        priority=row.priority,
        max_attempts=row.max_attempts,
        missed=policy,
    )


def schedule(
    cron: str,
    *,
    timezone: str = "UTC",
    args: Mapping[str, Any] | None = None,
    name: str | None = None,
    missed: MissedTicks = "latest",
    queue: str | None = None,
    priority: int | None = None,
    max_retries: int | None = None,
) -> Callable[[J], J]:
    """Run a Job class on a cron schedule, with fixed ``args`` as its payload::

        @schedule("0 9 * * *", timezone="Europe/Paris")
        class DailyReport(Job):
            async def handle(self) -> None: ...

    ``name`` defaults to the job type; give one to stack several schedules on a class.
    ``missed`` decides what happens to ticks that came due while no worker ran: enqueue the
    ``"latest"`` one (the default), ``"none"``, or ``"all"``.
    """

    def declare(cls: J) -> J:
        if not registry.is_registered(cls):
            raise InvalidJob(f"@schedule goes on a Job class with handle(), not {cls!r}")
        try:
            job = cls(**(args or {}))
        except ValidationError as error:
            raise InvalidJob(
                f"@schedule args do not validate as {cls.__qualname__}: {error}"
            ) from error
        registry.add_schedule(
            build_schedule(
                name or cls.job_options.name,
                cron,
                job,
                timezone=timezone,
                missed=missed,
                queue=queue,
                priority=priority,
                max_retries=max_retries,
            )
        )
        return cls

    return declare
