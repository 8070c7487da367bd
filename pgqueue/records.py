"""Typed records the read side returns: a job, its errors, queue statistics."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Json

#: pgqueue.jobs.id is a bigint from 1: other ids name no job.
MAX_JOB_ID = 2**63 - 1


def names_a_job(job_id: int) -> bool:
    """Whether ``job_id`` fits the id column; any other names no job (and would make the
    database raise rather than find nothing)."""
    return 1 <= job_id <= MAX_JOB_ID


class JobStatus(enum.StrEnum):
    """The public status vocabulary; equal to the ``pgqueue.job_status`` enum."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """Completed, failed or cancelled: no worker will touch the job again by itself."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class JobError(_Record):
    """One failed attempt of a job."""

    attempt: int
    at: datetime
    worker_id: UUID | None
    type: str
    message: str
    traceback: str


class JobRecord(_Record):
    """A job as stored, payload and result as plain JSON values."""

    id: int
    queue: str
    job_type: str
    payload: Json[dict[str, Any]]
    status: JobStatus
    priority: int
    attempts: int
    max_attempts: int | None  # None: the worker's default (max_retries + 1)
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: Json[Any] | None
    last_error: str | None
    errors: Json[list[JobError]]
    worker_id: UUID | None
    blocked: bool  # pending, waiting for its parents to complete
    depends_on: list[int] | None
    unique_key: str | None
    schedule_name: str | None  # enqueued by this schedule ...
    schedule_tick: datetime | None  # ... for this tick
    # The enqueuer's W3C trace headers ({"traceparent": ...}); None when it was not tracing.
    trace_context: Json[dict[str, Any]] | None = None


class EnqueuedJob(int):
    """An enqueued job's id (an ``int``). ``existing`` is True when ``unique_key`` was held by a
    live job: this is that job's id, and nothing was inserted."""

    existing: bool

    def __new__(cls, job_id: int, *, existing: bool = False) -> Self:
        enqueued = super().__new__(cls, job_id)
        enqueued.existing = existing
        return enqueued

    def __repr__(self) -> str:
        return f"EnqueuedJob({int(self)}, existing={self.existing})"

    def __str__(self) -> str:  # the plain id, as for an int (whose __str__ would call __repr__)
        return int.__repr__(self)


class QueueStats(_Record):
    """Job counts by state. ``pending`` counts due jobs; ``scheduled`` those due later."""

    queue: str | None
    pending: int
    scheduled: int
    running: int
    completed: int
    failed: int
    cancelled: int
    blocked: int  # pending jobs waiting for their parents


class QueueOverview(QueueStats):
    """One queue at a glance: the ``pgqueue.queue_stats`` view and its shared settings."""

    queue: str
    oldest_pending_seconds: float | None  # how long the oldest due job has waited
    completed_last_minute: int
    paused: bool  # no worker claims its jobs
    concurrency_limit: int | None  # at most this many running at once, cluster-wide
    rate_limit: int | None  # at most this many started ...
    rate_period: timedelta | None  # ... per window of this length


MissedTicks = Literal["latest", "none", "all"]


class ScheduleRecord(_Record):
    """A stored schedule; ``next_tick`` is computed from the database clock."""

    name: str
    cron: str
    timezone: str
    job_type: str
    payload: Json[dict[str, Any]]
    queue: str
    priority: int
    max_attempts: int | None
    missed: MissedTicks
    paused: bool
    in_code: bool  # declared with @schedule (else added with Queue.add_schedule)
    last_tick: datetime | None
    created_at: datetime
    updated_at: datetime
    next_tick: datetime | None


class WorkerRecord(_Record):
    """A registered worker process and the jobs it holds."""

    id: UUID
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_timeout: timedelta | None  # its lease; None: a worker of pgqueue 0007 or before
    job_ids: list[int]


class JobSummary(_Record):
    """A job in a list: no payload, result or error history; ``last_error`` cut to 500
    characters."""

    id: int
    queue: str
    job_type: str
    status: JobStatus
    priority: int
    attempts: int
    max_attempts: int | None
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None
    blocked: bool


class JobLink(_Record):
    """Another job, as a job's page names it: a parent or a dependent."""

    id: int
    job_type: str
    status: JobStatus


class WorkerLink(_Record):
    """The registered worker that holds, or last held, a job."""

    id: UUID
    host: str
    pid: int
    heartbeat_at: datetime


class JobRelations(_Record):
    """A job's parents, the jobs still waiting on it, and its worker while registered."""

    parents: Json[list[JobLink]]
    dependents: Json[list[JobLink]]
    worker: Json[WorkerLink] | None


# pgqueue.waiting_jobs counts a queue's pending, scheduled and blocked jobs exactly up to this
# many each, and estimates a larger count from the planner's statistics.
EXACT_COUNT = 10_000


class QueueSummary(_Record):
    """One queue's live state: what waits, runs and died, read by index only, so it costs the
    same however many finished jobs the table keeps (``QueueOverview`` also counts those), and
    however many jobs wait: ``pending``, ``scheduled`` and ``blocked`` above ``EXACT_COUNT``
    are estimates."""

    queue: str
    pending: int  # due now
    scheduled: int  # due later
    blocked: int  # waiting for parents
    running: int
    failed: int  # the dead letter queue
    oldest_pending_seconds: float | None
    paused: bool
    concurrency_limit: int | None
    rate_limit: int | None
    rate_period: timedelta | None


class ThroughputMinute(_Record):
    """Jobs of one queue that finished in one minute (the ``throughput_per_minute`` view)."""

    minute: datetime
    minutes_ago: int  # on the database clock: 0 is the current minute
    queue: str
    completed: int
    failed: int
    cancelled: int
