"""Queue: the application's handle on pgqueue. Enqueue (inside your transaction), read, act."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Generator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import asyncpg

from pgqueue.connections import executor_for
from pgqueue.dsn import check_dsn
from pgqueue.enqueue import Dispatch, JobGroup, prepare, prepare_batch, prepare_by_name
from pgqueue.errors import (
    InvalidJob,
    JobCancelled,
    JobFailed,
    JobNotFound,
    ScheduleNotFound,
    WaitTimeout,
)
from pgqueue.job import Job
from pgqueue.limits import QueueLimit
from pgqueue.options import EnqueueOptions, check_queue_name
from pgqueue.records import (
    MAX_JOB_ID,
    EnqueuedJob,
    JobRecord,
    JobRelations,
    JobStatus,
    JobSummary,
    MissedTicks,
    QueueOverview,
    QueueStats,
    QueueSummary,
    ScheduleRecord,
    ThroughputMinute,
    WorkerRecord,
)
from pgqueue.registry import registry
from pgqueue.retention import Retention
from pgqueue.schedule import build_schedule
from pgqueue.settings import resolve_dsn
from pgqueue.store import JobStore
from pgqueue.tracing import enqueue_span

MAX_PAGE = 500  # jobs in one page of list_jobs
_DAY_IN_MINUTES = 24 * 60  # the throughput view keeps a day


class Queue:
    """Enqueues jobs and reads their state. ``await Queue.connect(dsn)`` owns an asyncpg pool;
    ``Queue(pool)`` borrows yours."""

    def __init__(
        self, pool: asyncpg.Pool, *, owns_pool: bool = False, listen_dsn: str | None = None
    ) -> None:
        self.store = JobStore(pool, listen_dsn=listen_dsn)
        self._owns_pool = owns_pool

    @classmethod
    def connect(
        cls,
        dsn: str | None = None,
        *,
        min_size: int = 1,
        max_size: int = 10,
        pgbouncer: bool = False,
        listen_dsn: str | None = None,
    ) -> _Connect:
        """Open a pool on ``dsn`` (default: PGQUEUE_DSN, DATABASE_URL, else the embedded server).

        Await it, or use it as ``async with Queue.connect(dsn) as queue:``. Behind PgBouncer in
        transaction pooling mode pass ``pgbouncer=True`` (no prepared statements kept on pooled
        connections) and, for LISTEN, ``listen_dsn`` naming a direct connection to the server.
        """
        pool_options: dict[str, Any] = {"min_size": min_size, "max_size": max_size}
        if pgbouncer:
            pool_options["statement_cache_size"] = 0
        return _Connect(cls, dsn, pool_options, listen_dsn)

    async def check_schema(self) -> None:
        """Raise SchemaNotInstalled or SchemaOutdated unless the database has the schema this
        version needs. ``Queue.connect()`` checks by itself; call this on a ``Queue(pool)``."""
        await self.store.check_schema()

    async def close(self) -> None:
        if self._owns_pool:
            await self.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- enqueue -----------------------------------------------------------------------------

    async def enqueue(
        self,
        job: Job,
        *,
        delay: timedelta | float | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        backoff: timedelta | float | None = None,
        unique_key: str | None = None,
        unique_for: timedelta | float | None = None,
        depends_on: Sequence[int] | None = None,
        run_anyway: bool = False,
        connection: object | None = None,
    ) -> EnqueuedJob:
        """Enqueue one job and return its id. With ``connection=``, inside that transaction.

        ``unique_key``: while a job with this key is pending or running (or completed less than
        ``unique_for`` ago), return that job's id, with ``.existing`` set, and insert nothing.
        ``depends_on``: run only once these jobs have completed; if one fails or is cancelled,
        this job is cancelled, unless ``run_anyway`` (then it runs once they have all finished).
        """
        options = EnqueueOptions(
            delay,
            run_at,
            priority,
            queue,
            max_retries,
            backoff,
            unique_key,
            unique_for,
            depends_on,
            run_anyway,
        )
        return await self.enqueue_with(job, options, connection)

    async def enqueue_with(
        self, job: Job, options: EnqueueOptions, connection: object | None = None
    ) -> EnqueuedJob:
        """Enqueue one job with options already gathered (the dispatch builder's path)."""
        row = prepare(job, options)
        executor = None if connection is None else executor_for(connection)
        with enqueue_span((row,)) as span:
            enqueued = await self.store.enqueue(
                job=row, executor=executor, trace_context=span.carrier
            )
            span.enqueued(enqueued, existing=enqueued.existing)
        return enqueued

    async def chain(self, *jobs: Job, connection: object | None = None) -> list[int]:
        """Enqueue jobs that run one after the other, each once the previous one has completed,
        in one transaction. Returns their ids in order."""
        if not jobs:
            raise ValueError("chain() needs at least one job")
        rows = prepare_batch(jobs, EnqueueOptions())  # all valid before any is written
        ids: list[int] = []
        with enqueue_span(rows) as span:  # one span, and one trace context, for the chain
            async with self.store.transaction(connection) as executor:
                for row in rows:
                    ids.append(
                        await self.store.enqueue(
                            job=replace(row, depends_on=tuple(ids[-1:])),
                            executor=executor,
                            trace_context=span.carrier,
                        )
                    )
        return ids

    def group(self, jobs: Sequence[Job], *, connection: object | None = None) -> JobGroup:
        """Jobs enqueued together in one transaction; ``.then(job)`` adds one that runs once
        they have all completed. Await either for the ids in order."""
        return JobGroup(self, jobs, connection)

    async def enqueue_graph(
        self,
        parents: Sequence[Job],
        child: Job | None,
        run_anyway: bool,
        connection: object | None,
    ) -> list[int]:
        """Enqueue ``parents``, then ``child`` depending on all of them, in one transaction."""
        if not parents:
            raise ValueError("group() needs at least one job")
        rows = prepare_batch(parents, EnqueueOptions())
        last = None if child is None else prepare(child, EnqueueOptions())
        with enqueue_span(rows if last is None else [*rows, last]) as span:
            async with self.store.transaction(connection) as executor:
                ids = await self.store.enqueue_batch(
                    jobs=rows, executor=executor, trace_context=span.carrier
                )
                if last is not None:
                    row = replace(last, depends_on=tuple(ids), run_anyway=run_anyway)
                    ids.append(
                        await self.store.enqueue(
                            job=row, executor=executor, trace_context=span.carrier
                        )
                    )
        return ids

    async def enqueue_batch(
        self,
        jobs: Sequence[Job],
        *,
        delay: timedelta | float | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        backoff: timedelta | float | None = None,
        connection: object | None = None,
    ) -> list[int]:
        """Enqueue many jobs in one round trip; ids come back in the order of ``jobs``."""
        options = EnqueueOptions(delay, run_at, priority, queue, max_retries, backoff)
        rows = prepare_batch(jobs, options)
        if not rows:
            return []
        executor = None if connection is None else executor_for(connection)
        with enqueue_span(rows) as span:
            return await self.store.enqueue_batch(
                jobs=rows, executor=executor, trace_context=span.carrier
            )

    async def enqueue_by_name(
        self,
        job_type: str,
        payload: object,
        *,
        delay: timedelta | float | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_retries: int | None = None,
        unique_key: str | None = None,
        depends_on: Sequence[int] | None = None,
    ) -> EnqueuedJob:
        """Enqueue a job by its registered name with a JSON object as payload.

        Validated by the class when it is registered in this process; else the worker does it.
        """
        options = EnqueueOptions(
            delay,
            None,
            priority,
            queue,
            max_retries,
            None,
            unique_key=unique_key,
            depends_on=depends_on,
        )
        row = prepare_by_name(job_type, payload, options)
        with enqueue_span((row,)) as span:
            enqueued = await self.store.enqueue(job=row, trace_context=span.carrier)
            span.enqueued(enqueued, existing=enqueued.existing)
        return enqueued

    def dispatch(
        self,
        job: Job,
        *,
        delay: timedelta | float | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        backoff: timedelta | float | None = None,
        unique_key: str | None = None,
        unique_for: timedelta | float | None = None,
        depends_on: Sequence[int] | None = None,
        run_anyway: bool = False,
        connection: object | None = None,
    ) -> Dispatch:
        """An awaitable builder: ``await queue.dispatch(job).with_max_retries(5)``.

        Takes the keywords of ``enqueue``; a builder method overrides its keyword.
        """
        options = EnqueueOptions(
            delay,
            run_at,
            priority,
            queue,
            max_retries,
            backoff,
            unique_key,
            unique_for,
            depends_on,
            run_anyway,
        )
        return Dispatch(self, job, options, connection)

    # --- read side -----------------------------------------------------------------------------

    async def get_job(self, job_id: int) -> JobRecord:
        record = await self.store.get_job(id=job_id) if _names_a_job(job_id) else None
        if record is None:
            raise JobNotFound(job_id)
        return record

    async def get_job_status(self, job_id: int) -> JobStatus:
        status = await self.store.get_job_status(id=job_id) if _names_a_job(job_id) else None
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
        relations = await self.store.job_relations(id=job_id) if _names_a_job(job_id) else None
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

    # --- operator actions ----------------------------------------------------------------------

    async def cancel(self, job_id: int) -> bool:
        """Cancel a pending job, or stop a running one (its worker cancels the task).

        Returns False if the job had already finished.
        """
        return _names_a_job(job_id) and await self.store.cancel_job(id=job_id)

    async def retry(self, job_id: int) -> bool:
        """Put a failed or cancelled job back to pending with fresh attempts."""
        return _names_a_job(job_id) and await self.store.retry_job(id=job_id)

    async def cancel_failed(self, job_ids: Sequence[int]) -> list[int]:
        """Take failed jobs out of the dead letter queue without running them: they become
        cancelled, errors kept. Returns the ids that were failed (and now are cancelled)."""
        return await self.store.cancel_failed_jobs(ids=[i for i in job_ids if _names_a_job(i)])

    async def retry_failed(
        self,
        queue: str | None = None,
        job_type: str | None = None,
        *,
        job_ids: Sequence[int] | None = None,
    ) -> int:
        """Put every failed job (of one queue and/or job type, or else among ``job_ids``) back to
        pending; how many. Unlike ``retry``, a job that is no longer failed (cancelled
        meanwhile, say) is left as it is."""
        if job_ids is not None:
            if queue is not None or job_type is not None:
                raise ValueError("give job_ids, or queue and job_type, not both")
            return await self.store.retry_failed_ids(ids=[i for i in job_ids if _names_a_job(i)])
        if job_type is not None and "\x00" in job_type:
            raise InvalidJob("job_type contains a NUL character, which no job type can")
        return await self.store.retry_failed_jobs(
            queue=None if queue is None else check_queue_name(queue), job_type=job_type
        )

    async def clear(
        self, queue: str | None = None, *, status: JobStatus | str = JobStatus.PENDING
    ) -> int:
        """Delete the jobs of one status (pending by default; failed or completed too) of one
        queue, or of all; return how many were deleted. Running jobs are never cleared."""
        status = JobStatus(status)
        if status is JobStatus.RUNNING:
            raise ValueError("running jobs cannot be cleared: cancel them first")
        return await self.store.clear_jobs(
            status=status, queue=None if queue is None else check_queue_name(queue)
        )

    async def prune(
        self,
        retention: Retention | None = None,
        *,
        batch_size: int = 1000,
        max_batches: int | None = None,
    ) -> dict[JobStatus, int]:
        """Delete finished jobs older than their retention, in batches of ``batch_size`` so no
        statement holds locks for long; returns how many of each status were deleted.

        One pruner at a time: while another worker prunes, this deletes nothing.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        deleted: dict[JobStatus, int] = {}
        for status, period in (retention or Retention()).periods():
            deleted[status] = 0
            for _ in itertools.count() if max_batches is None else range(max_batches):
                count = await self.store.prune_jobs(
                    status=status, older_than=period, batch_size=batch_size
                )
                deleted[status] += count
                if count < batch_size:
                    break
        return deleted

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

    # --- queues: pause and limits, shared by every worker ------------------------------------

    async def pause_queue(self, queue: str) -> None:
        """No worker claims jobs from ``queue`` until it is resumed (running jobs go on)."""
        await self.store.set_queue_paused(queue=check_queue_name(queue), paused=True)

    async def resume_queue(self, queue: str) -> None:
        await self.store.set_queue_paused(queue=check_queue_name(queue), paused=False)

    async def set_queue_limits(
        self,
        queue: str,
        *,
        concurrency: int | None = None,
        rate: int | None = None,
        per: timedelta | float = timedelta(seconds=1),
    ) -> None:
        """Limit ``queue`` across all workers: at most ``concurrency`` jobs running at once, at
        most ``rate`` jobs started per ``per`` (windows aligned on the database clock). None
        removes a limit."""
        await self.store.set_queue_limits(
            queue=check_queue_name(queue),
            limit=QueueLimit(concurrency=concurrency, rate=rate, per=per),
        )

    # --- schedules ---------------------------------------------------------------------------

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


def _names_a_job(job_id: int) -> bool:
    """Whether ``job_id`` fits the id column; any other names no job (and would make the
    database raise rather than find nothing)."""
    return 1 <= job_id <= MAX_JOB_ID


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


async def _leave_session_as_is(connection: asyncpg.Connection) -> None:
    """The release of a connection to Queue.connect()'s pool, after asyncpg has rolled back any
    open transaction. Its default reset (RESET ALL, UNLISTEN *, ...) would cost a round trip on
    every enqueue, for state that pgqueue's own statements never leave; the one place that
    lends a pool connection to user code, context.transaction(), resets it itself."""


class _Connect:
    """What ``Queue.connect()`` returns: awaitable, and an async context manager."""

    def __init__(
        self,
        cls: type[Queue],
        dsn: str | None,
        pool_options: dict[str, Any],
        listen_dsn: str | None,
    ) -> None:
        self._args = (cls, dsn, pool_options, listen_dsn)
        self._queue: Queue | None = None

    async def _open(self) -> Queue:
        cls, dsn, pool_options, listen_dsn = self._args
        if listen_dsn is not None:
            check_dsn(listen_dsn, "listen_dsn")
        pool = await asyncpg.create_pool(
            resolve_dsn(dsn).dsn, reset=_leave_session_as_is, **pool_options
        )
        queue = cls(pool, owns_pool=True, listen_dsn=listen_dsn)
        try:
            await queue.store.check_schema()
        except BaseException:
            await pool.close()
            raise
        return queue

    def __await__(self) -> Generator[Any, None, Queue]:
        return self._open().__await__()

    async def __aenter__(self) -> Queue:
        self._queue = await self._open()
        return self._queue

    async def __aexit__(self, *exc: object) -> None:
        if self._queue is not None:
            await self._queue.close()
