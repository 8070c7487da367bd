"""The rows the store writes and reads for the worker: plain values, no behaviour.

A leaf: the store takes and returns these, and the modules above it build or consume them, so
the store never imports its callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pgqueue.records import JobStatus, MissedTicks


@dataclass(slots=True)  # not frozen: that makes each of a batch's rows cost 1 us more
class NewJob:
    """One row to insert, validated by the queue."""

    job_type: str
    payload: str
    queue: str
    run_at: datetime | None
    delay: timedelta | None
    priority: int
    max_attempts: int | None
    retry_backoff: timedelta | None
    unique_key: str | None = None
    unique_for: timedelta | None = None
    depends_on: tuple[int, ...] = ()
    run_anyway: bool = False

    def with_payload(self, payload: str) -> NewJob:
        """The same row for another job of the same class (``dataclasses.replace`` costs more)."""
        return NewJob(
            self.job_type,
            payload,
            self.queue,
            self.run_at,
            self.delay,
            self.priority,
            self.max_attempts,
            self.retry_backoff,
            self.unique_key,
            self.unique_for,
            self.depends_on,
            self.run_anyway,
        )


@dataclass(frozen=True)
class ParentResult:
    """A parent of a running job: its type, how it ended and what it returned (JSON text)."""

    id: int
    job_type: str
    status: JobStatus
    result: str | None


@dataclass(frozen=True)
class DueSchedule:
    """A schedule as a worker's scheduler reads it."""

    name: str
    cron: str
    timezone: str
    missed: MissedTicks
    ticks_after: datetime
    updated_at: datetime


@dataclass(frozen=True)
class QueueDepth:
    """A queue's ready jobs, as a worker's metrics report them."""

    queue: str
    ready: int
    oldest_age_seconds: float  # 0 when none is ready


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker now holds, as the claim returned it."""

    id: int
    queue: str
    job_type: str
    payload: str
    attempt: int
    max_attempts: int | None  # None: the worker's default applies
    retry_backoff: timedelta | None
    depends_on: tuple[int, ...]
    trace_context: str | None = None  # JSON text: the enqueuer's W3C trace headers, if it traced


@dataclass(frozen=True)
class Schedule:
    """One schedule, validated: what ``pgqueue.schedules`` stores."""

    name: str
    cron: str
    timezone: str
    job_type: str
    payload: str  # JSON object
    queue: str
    priority: int
    max_attempts: int | None
    missed: MissedTicks
