"""Typed records the read side returns: a job, its errors, queue statistics."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Json


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


class QueueStats(_Record):
    """Job counts by state. ``pending`` counts due jobs; ``scheduled`` those due later."""

    queue: str | None
    pending: int
    scheduled: int
    running: int
    completed: int
    failed: int
    cancelled: int


class QueueOverview(QueueStats):
    """One queue at a glance (the ``pgqueue.queue_stats`` view)."""

    queue: str
    oldest_pending_seconds: float | None  # how long the oldest due job has waited
    completed_last_minute: int


class WorkerRecord(_Record):
    """A registered worker process and the jobs it holds."""

    id: UUID
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    job_ids: list[int]
