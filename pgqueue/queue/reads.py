"""The Queue's read side: a job and its status, lists and pages of jobs, counts, throughput,
workers, and waiting for a job's outcome."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from pgqueue.errors import JobCancelled, JobFailed, JobNotFound, WaitTimeout
from pgqueue.options import check_queue_name
from pgqueue.records import (
    JobRecord,
    JobRelations,
    JobStatus,
    JobSummary,
    QueueOverview,
    QueueStats,
    QueueSummary,
    ThroughputMinute,
    WorkerRecord,
    names_a_job,
)
from pgqueue.registry import registry
from pgqueue.store import JobStore

MAX_PAGE = 500  # jobs in one page of list_jobs
_DAY_IN_MINUTES = 24 * 60  # the throughput view keeps a day


class Reads:
    store: JobStore

    async def get_job(self, job_id: int) -> JobRecord:
        record = await self.store.get_job(id=job_id) if names_a_job(job_id) else None
        if record is None:
            raise JobNotFound(job_id)
        return record

    async def get_job_status(self, job_id: int) -> JobStatus:
        status = await self.store.get_job_status(id=job_id) if names_a_job(job_id) else None
        if status is None:
            raise JobNotFound(job_id)
        return status

    async def list_recent_jobs(
        self, limit: int = 20, *, status: JobStatus | str | None = None, queue: str | None = None
    ) -> list[JobRecord]:
        """The newest jobs first, optionally only those of one status and one queue."""
        return await self.store.list_recent_jobs(
            limit=limit,
            status=None if status is None else JobStatus(status),
            queue=None if queue is None else check_queue_name(queue),
        )

    async def list_jobs(
        self,
        *,
        queue: str | None = None,
        status: JobStatus | str | None = None,
        job_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        before_finished_at: datetime | None = None,
        limit: int = 50,
    ) -> list[JobSummary]:
        """One page of jobs matching every filter given; pass the last one's id as
        ``before_id`` for the next page.

        Newest enqueued first, ``since``/``until`` bounding when they were enqueued; for a
        finished status (completed, failed, cancelled), the latest to finish first, bounding
        when they finished; pass the last one's ``finished_at`` as ``before_finished_at`` too,
        so the next page holds even if that job was retried or pruned meanwhile. Fast on
        millions of rows: pages are found by index, never counted.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE}, got {limit}")
        return await self.store.list_jobs(
            status=None if status is None else JobStatus(status),
            queue=None if queue is None else check_queue_name(queue),
            job_type=job_type,
            since=since,
            until=until,
            before_id=before_id,
            before_finished_at=before_finished_at,
            limit=limit,
        )

    async def job_relations(self, job_id: int) -> JobRelations:
        """A job's parents, the jobs still waiting on it, and the worker holding it."""
        relations = await self.store.job_relations(id=job_id) if names_a_job(job_id) else None
        if relations is None:
            raise JobNotFound(job_id)
        return relations

    async def throughput(self, minutes: int = 60) -> list[ThroughputMinute]:
        """Jobs finished per minute and queue over the last ``minutes`` (at most a day)."""
        if not 1 <= minutes <= _DAY_IN_MINUTES:
            raise ValueError(f"minutes must be 1 to {_DAY_IN_MINUTES}, got {minutes}")
        return await self.store.throughput(minutes=minutes)

    async def stats(self, queue: str | None = None) -> QueueStats:
        """Counts by state for one queue, or for all queues."""
        return await self.store.stats(queue=None if queue is None else check_queue_name(queue))

    async def wait_for(self, job_id: int, timeout: float = 30.0) -> Any:  # noqa: ASYNC109
        """Wait until the job finishes; return its result, typed by its class's handle().

        Raises JobFailed or JobCancelled if it ended that way, WaitTimeout after ``timeout`` s.
        """
        if not timeout >= 0:  # NaN compares false: it would wait forever
            raise ValueError(f"timeout must be a number of seconds from 0, got {timeout!r}")
        deadline = time.monotonic() + timeout
        pause = 0.01
        while True:
            record = await self.get_job(job_id)
            if record.status.is_finished:
                return _outcome(record)
            if time.monotonic() >= deadline:
                raise WaitTimeout(job_id, record.status, timeout)
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, 0.5)

    async def queue_overview(self) -> list[QueueOverview]:
        """Every queue with jobs or settings: counts by state, the oldest due job's wait, the
        last minute's completions, and whether it is paused or limited."""
        return await self.store.queue_overview()

    async def queue_summary(self) -> list[QueueSummary]:
        """Every queue with unfinished or failed jobs, or settings: its live counts, oldest due
        job's wait, paused and limits. Unlike ``queue_overview`` it never counts finished jobs,
        so it stays fast on a table with millions of them."""
        return await self.store.queue_summary()

    async def failed_jobs(
        self, *, queue: str | None = None, job_type: str | None = None, limit: int = 50
    ) -> list[JobRecord]:
        """The dead letter queue, newest failure first."""
        return await self.store.list_failed_jobs(
            queue=None if queue is None else check_queue_name(queue),
            job_type=job_type,
            limit=limit,
        )

    async def workers(self) -> list[WorkerRecord]:
        """Registered workers and the ids of the jobs each holds."""
        return await self.store.list_workers()


def _outcome(record: JobRecord) -> Any:
    if record.status is JobStatus.FAILED:
        raise JobFailed(record.id, record.last_error)
    if record.status is JobStatus.CANCELLED:
        raise JobCancelled(record.id)
    cls = registry.get(record.job_type)
    adapter = None if cls is None else cls.result_adapter()
    if adapter is None or record.result is None:
        return record.result
    return adapter.validate_python(record.result)
