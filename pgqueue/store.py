"""JobStore: one typed method per named query. The only code that runs SQL.

Rows are converted here, at the edge: nothing above this module sees an asyncpg Record.
JSON travels as text in both directions, so the caller's connection codecs never matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from pgqueue.connections import AsyncpgExecutor, Executor, database_error
from pgqueue.cron import next_tick
from pgqueue.errors import InvalidJob, SchemaNotInstalled, SchemaOutdated
from pgqueue.limits import QueueLimit
from pgqueue.records import (
    EnqueuedJob,
    JobRecord,
    JobRelations,
    JobStatus,
    JobSummary,
    QueueOverview,
    QueueStats,
    QueueSummary,
    ScheduleRecord,
    ThroughputMinute,
    WorkerRecord,
)
from pgqueue.rows import (
    ClaimedJob,
    DueSchedule,
    NewJob,
    ParentResult,
    QueueDepth,
    Schedule,
)
from pgqueue.sql import SCHEMA_REVISION, queries

_FOREIGN_KEY_VIOLATION = "23503"  # what pgqueue.enqueue_job raises for a missing parent


class JobStore:
    def __init__(self, pool: asyncpg.Pool, *, listen_dsn: str | None = None) -> None:
        self.pool = pool
        self._listen_dsn = listen_dsn
        self._pool_executor = AsyncpgExecutor(pool)

    async def open_connection(self, *, for_listen: bool = False) -> asyncpg.Connection:
        """A new connection outside the pool, made with the pool's own connect arguments, for
        session state that must not go back to the pool (LISTEN) or wait on it (heartbeats).

        ``for_listen`` uses the listen DSN when one is set (a direct connection past PgBouncer).
        """
        if for_listen and self._listen_dsn is not None:
            direct: asyncpg.Connection = await asyncpg.connect(self._listen_dsn)
            return direct
        # asyncpg keeps what the pool was created with (also after set_connect_args()).
        args: list[Any] = list(getattr(self.pool, "_connect_args", []))
        kwargs: dict[str, Any] = dict(getattr(self.pool, "_connect_kwargs", {}))
        connection: asyncpg.Connection = await asyncpg.connect(*args, **kwargs)
        return connection

    async def check_schema(self) -> None:
        """Raise unless the database's pgqueue schema is at least the revision this code needs."""
        async with self.pool.acquire() as connection:
            if not await connection.fetchval(queries["schema_is_installed"].sql):
                raise SchemaNotInstalled
            found = await connection.fetchval(queries["schema_revision"].sql)
        if found is None or int(found) < int(SCHEMA_REVISION):
            raise SchemaOutdated(str(found), SCHEMA_REVISION)

    # --- enqueue (may run on the caller's connection) ---------------------------------------

    async def enqueue(
        self, *, job: NewJob, executor: Executor | None = None, trace_context: str | None = None
    ) -> EnqueuedJob:
        """Raises InvalidJob when a parent in ``depends_on`` does not exist. ``trace_context``:
        JSON text of the enqueuer's trace headers, stored with the job."""
        try:
            return await self._enqueue(job, executor or self._pool_executor, trace_context)
        except Exception as error:
            raised = database_error(error)
            if raised is not None and raised[0] == _FOREIGN_KEY_VIOLATION:
                raise InvalidJob(raised[1]) from error
            raise

    async def _enqueue(
        self, job: NewJob, executor: Executor, trace_context: str | None
    ) -> EnqueuedJob:
        job_id, existing = await executor.fetch_row(
            queries["enqueue"],
            job.job_type,
            job.payload,
            job.queue,
            job.run_at,
            job.delay,
            job.priority,
            job.max_attempts,
            job.retry_backoff,
            job.unique_key,
            job.unique_for,
            list(job.depends_on) or None,
            job.run_anyway,
            trace_context,
        )
        return EnqueuedJob(job_id, existing=existing)

    async def enqueue_batch(
        self,
        *,
        jobs: Sequence[NewJob],
        executor: Executor | None = None,
        trace_context: str | None = None,
    ) -> list[int]:
        """``trace_context``: as for ``enqueue``, one for the whole batch."""
        ids = await (executor or self._pool_executor).fetch_column(
            queries["enqueue_batch"],
            [job.job_type for job in jobs],
            [job.payload for job in jobs],
            [job.queue for job in jobs],
            [job.run_at for job in jobs],
            [job.delay for job in jobs],
            [job.priority for job in jobs],
            [job.max_attempts for job in jobs],
            [job.retry_backoff for job in jobs],
            trace_context,
        )
        return [int(i) for i in ids]

    # --- worker side -------------------------------------------------------------------------

    async def claim_jobs(
        self,
        *,
        queues: Sequence[str],
        job_types: Sequence[str],
        worker_id: UUID,
        max_jobs: int,
        connection: asyncpg.Connection | PoolConnectionProxy,
    ) -> list[ClaimedJob]:
        """On ``connection``, not the pool: the rows are the claim, so a connection that breaks
        as the pool resets it must not lose them (the worker keeps one for claims)."""
        rows = await connection.fetch(
            queries["claim_jobs"].sql, queues, job_types, worker_id, max_jobs
        )
        return [
            ClaimedJob(
                id=row["id"],
                queue=row["queue"],
                job_type=row["job_type"],
                payload=row["payload"],
                attempt=row["attempts"],
                max_attempts=row["max_attempts"],
                retry_backoff=row["retry_backoff"],
                depends_on=tuple(row["depends_on"] or ()),
                trace_context=row["trace_context"],
            )
            for row in rows
        ]

    async def seconds_until_next_job(
        self,
        *,
        queues: Sequence[str],
        job_types: Sequence[str],
        connection: asyncpg.Connection | None = None,
    ) -> float | None:
        sql = queries["seconds_until_next_job"].sql
        seconds = await (connection or self.pool).fetchval(sql, queues, job_types)
        return None if seconds is None else max(float(seconds), 0.0)  # overdue: due now

    async def queue_depths(self, *, queues: Sequence[str]) -> list[QueueDepth]:
        rows = await self.pool.fetch(queries["queue_depths"].sql, queues)
        return [QueueDepth(row["queue"], row["ready"], row["oldest_age_seconds"]) for row in rows]

    async def complete_jobs(
        self,
        *,
        ids: Sequence[int],
        attempts: Sequence[int],
        results: Sequence[str | None],
        worker_id: UUID,
        connection: asyncpg.Connection | PoolConnectionProxy,
    ) -> list[int]:
        """Returns the ids written; on ``connection`` (in its transaction, if one is open), as
        claim_jobs, so committed completions are never lost with a connection reset. Any order
        of ``ids`` will do: pgqueue.complete_jobs locks the rows in id order itself."""
        rows = await connection.fetch(
            queries["complete_jobs"].sql, ids, attempts, results, worker_id
        )
        return [row["id"] for row in rows]

    async def fail_job(
        self,
        *,
        id: int,
        attempt: int,
        worker_id: UUID,
        error: str,
        last_error: str,
        retry_delay: timedelta,
        permanent: bool,
        default_max_attempts: int,
    ) -> JobStatus | None:
        """Returns the job's new status, or None when this worker no longer held the job."""
        status = await self.pool.fetchval(
            queries["fail_job"].sql,
            id,
            attempt,
            worker_id,
            error,
            last_error,
            retry_delay,
            permanent,
            default_max_attempts,
        )
        return None if status is None else JobStatus(status)

    async def snooze_job(self, *, id: int, attempt: int, worker_id: UUID, delay: timedelta) -> bool:
        """False when this worker no longer held the job."""
        snoozed = await self.pool.fetchval(queries["snooze_job"].sql, id, attempt, worker_id, delay)
        return snoozed is not None

    async def parent_results(self, *, ids: Sequence[int]) -> list[ParentResult]:
        rows = await self.pool.fetch(queries["parent_results"].sql, ids)
        return [
            ParentResult(row["id"], row["job_type"], JobStatus(row["status"]), row["result"])
            for row in rows
        ]

    async def cancelled_among(self, *, ids: Sequence[int]) -> list[int]:
        rows = await self.pool.fetch(queries["cancelled_among"].sql, ids)
        return [row["id"] for row in rows]

    async def rescue_expired_jobs(
        self, *, heartbeat_timeout: timedelta, default_max_attempts: int
    ) -> list[int]:
        rows = await self.pool.fetch(
            queries["rescue_expired_jobs"].sql, heartbeat_timeout, default_max_attempts
        )
        return [row["id"] for row in rows]

    async def release_unheld_jobs(
        self, *, worker_id: UUID, held_ids: Sequence[int], claimed_before: timedelta
    ) -> list[int]:
        rows = await self.pool.fetch(
            queries["release_unheld_jobs"].sql, worker_id, held_ids, claimed_before
        )
        return [row["id"] for row in rows]

    async def release_worker_jobs(self, *, worker_id: UUID) -> list[int]:
        rows = await self.pool.fetch(queries["release_worker_jobs"].sql, worker_id)
        return [row["id"] for row in rows]

    async def heartbeat_worker(
        self,
        *,
        id: UUID,
        host: str,
        pid: int,
        queues: Sequence[str],
        concurrency: int,
        heartbeat_timeout: timedelta,
        connection: asyncpg.Connection,
    ) -> None:
        """Register the worker with its lease, or refresh its heartbeat, on the worker's own
        connection."""
        await connection.execute(
            queries["heartbeat_worker"].sql, id, host, pid, queues, concurrency, heartbeat_timeout
        )

    async def deregister_worker(self, *, id: UUID) -> None:
        await self.pool.execute(queries["deregister_worker"].sql, id)

    async def delete_expired_workers(self, *, heartbeat_timeout: timedelta) -> int:
        status = await self.pool.execute(queries["delete_expired_workers"].sql, heartbeat_timeout)
        return int(status.split()[-1])  # "DELETE <count>"

    async def ping(self, *, connection: asyncpg.Connection) -> None:
        await connection.fetchval(queries["ping"].sql)

    # --- read side and operator actions -------------------------------------------------------

    async def get_job(self, *, id: int) -> JobRecord | None:
        row = await self.pool.fetchrow(queries["get_job"].sql, id)
        return None if row is None else JobRecord.model_validate(dict(row))

    async def get_job_status(self, *, id: int) -> JobStatus | None:
        status = await self.pool.fetchval(queries["get_job_status"].sql, id)
        return None if status is None else JobStatus(status)

    async def list_recent_jobs(
        self, *, limit: int, status: JobStatus | None, queue: str | None
    ) -> list[JobRecord]:
        rows = await self.pool.fetch(queries["list_recent_jobs"].sql, limit, status, queue)
        return [JobRecord.model_validate(dict(row)) for row in rows]

    async def stats(self, *, queue: str | None) -> QueueStats:
        row = await self.pool.fetchrow(queries["stats"].sql, queue)
        counts: dict[str, Any] = dict(row) if row is not None else {}
        return QueueStats(queue=queue, **counts)

    async def cancel_job(self, *, id: int) -> bool:
        return bool(await self.pool.fetchval(queries["cancel_job"].sql, id))

    async def retry_job(self, *, id: int) -> bool:
        return bool(await self.pool.fetchval(queries["retry_job"].sql, id))

    async def retry_failed_jobs(self, *, queue: str | None, job_type: str | None) -> int:
        return int(await self.pool.fetchval(queries["retry_failed_jobs"].sql, queue, job_type))

    async def retry_failed_ids(self, *, ids: Sequence[int]) -> int:
        return int(await self.pool.fetchval(queries["retry_failed_ids"].sql, list(ids)))

    async def clear_jobs(self, *, status: JobStatus, queue: str | None) -> int:
        return int(await self.pool.fetchval(queries["clear_jobs"].sql, status, queue))

    async def prune_jobs(self, *, status: JobStatus, older_than: timedelta, batch_size: int) -> int:
        """One batch; 0 also when another worker holds the pruning lock."""
        sql = queries["prune_jobs"].sql
        return int(await self.pool.fetchval(sql, status, older_than, batch_size))

    async def queue_overview(self) -> list[QueueOverview]:
        rows = await self.pool.fetch(queries["queue_overview"].sql)
        return [QueueOverview.model_validate(dict(row)) for row in rows]

    async def list_failed_jobs(
        self, *, queue: str | None, job_type: str | None, limit: int
    ) -> list[JobRecord]:
        rows = await self.pool.fetch(queries["list_failed_jobs"].sql, queue, job_type, limit)
        return [JobRecord.model_validate(dict(row)) for row in rows]

    async def list_jobs(
        self,
        *,
        status: JobStatus | None,
        queue: str | None,
        job_type: str | None,
        since: datetime | None,
        until: datetime | None,
        before_id: int | None,
        before_finished_at: datetime | None,
        limit: int,
    ) -> list[JobSummary]:
        """A finished status is listed by (finished_at, id), ``before_finished_at`` being the
        cursor's finished_at; any other by id, and ``before_finished_at`` is not used."""
        parameters: tuple[object, ...] = (status, queue, job_type, since, until, before_id, limit)
        if status is not None and status.is_finished:
            sql, parameters = queries["list_finished_jobs"].sql, (*parameters, before_finished_at)
        else:
            sql = queries["list_jobs"].sql
        rows = await self.pool.fetch(sql, *parameters)
        return [JobSummary.model_validate(dict(row)) for row in rows]

    async def job_relations(self, *, id: int) -> JobRelations | None:
        row = await self.pool.fetchrow(queries["job_relations"].sql, id)
        return None if row is None else JobRelations.model_validate(dict(row))

    async def queue_summary(self) -> list[QueueSummary]:
        rows = await self.pool.fetch(queries["queue_summary"].sql)
        return [QueueSummary.model_validate(dict(row)) for row in rows]

    async def throughput(self, *, minutes: int) -> list[ThroughputMinute]:
        rows = await self.pool.fetch(queries["throughput"].sql, minutes)
        return [ThroughputMinute.model_validate(dict(row)) for row in rows]

    async def cancel_failed_jobs(self, *, ids: Sequence[int]) -> list[int]:
        rows = await self.pool.fetch(queries["cancel_failed_jobs"].sql, list(ids))
        return [row["id"] for row in rows]

    async def list_workers(self) -> list[WorkerRecord]:
        rows = await self.pool.fetch(queries["list_workers"].sql)
        return [WorkerRecord.model_validate(dict(row)) for row in rows]

    # --- queues -------------------------------------------------------------------------------

    async def set_queue_paused(self, *, queue: str, paused: bool) -> None:
        await self.pool.execute(queries["set_queue_paused"].sql, queue, paused)

    async def set_queue_limits(
        self, *, queue: str, limit: QueueLimit, keep_unset: bool = False
    ) -> None:
        """A limit that is None is removed, or with ``keep_unset`` left as it was."""
        await self.pool.execute(
            queries["set_queue_limits"].sql,
            queue,
            limit.concurrency,
            limit.rate,
            None if limit.rate is None else limit.period,
            keep_unset,
        )

    # --- schedules ----------------------------------------------------------------------------

    async def save_schedule(self, *, schedule: Schedule, in_code: bool) -> bool:
        """False when a schedule of that name is of the other kind (code / add_schedule)."""
        saved = await self.pool.fetchval(
            queries["save_schedule"].sql,
            schedule.name,
            schedule.cron,
            schedule.timezone,
            schedule.job_type,
            schedule.payload,
            schedule.queue,
            schedule.priority,
            schedule.max_attempts,
            schedule.missed,
            in_code,
        )
        return saved is not None

    async def list_schedules(self) -> list[ScheduleRecord]:
        rows = await self.pool.fetch(queries["list_schedules"].sql)
        return [
            ScheduleRecord.model_validate(
                {
                    **row,
                    "next_tick": None if row["paused"] else _next_tick(row),
                }
            )
            for row in rows
        ]

    async def set_schedule_paused(self, *, name: str, paused: bool) -> bool:
        """False when there is no such schedule."""
        return (
            await self.pool.fetchval(queries["set_schedule_paused"].sql, name, paused) is not None
        )

    async def delete_schedule(self, *, name: str) -> bool:
        return await self.pool.fetchval(queries["delete_schedule"].sql, name) is not None

    async def due_schedules(
        self, *, declared_names: Sequence[str]
    ) -> tuple[datetime, list[DueSchedule]]:
        """The database clock, and the schedules this worker keeps."""
        rows = await self.pool.fetch(queries["due_schedules"].sql, declared_names)
        schedules = [
            DueSchedule(
                name=row["name"],
                cron=row["cron"],
                timezone=row["timezone"],
                missed=row["missed"],
                ticks_after=row["ticks_after"],
                updated_at=row["updated_at"],
            )
            for row in rows
            if row["name"] is not None
        ]
        return rows[0]["db_now"], schedules

    async def enqueue_schedule_ticks(
        self,
        *,
        name: str,
        seen_updated_at: datetime,
        ticks: Sequence[datetime],
        done_until: datetime,
    ) -> list[int]:
        rows = await self.pool.fetch(
            queries["enqueue_schedule_ticks"].sql, name, seen_updated_at, ticks, done_until
        )
        return [row["id"] for row in rows]


def _next_tick(row: asyncpg.Record) -> datetime | None:
    """When a stored schedule ticks next; None if croniter cannot say (a row written by hand)."""
    try:
        return next_tick(
            row["cron"], row["timezone"], max(row["db_now"], row["last_tick"] or row["created_at"])
        )
    except (ValueError, LookupError):
        return None
