"""JobStore: one typed method per named query. The only code that runs SQL.

Rows are converted here, at the edge: nothing above this module sees an asyncpg Record.
JSON travels as text in both directions, so the caller's connection codecs never matter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from pgqueue.connections import AsyncpgExecutor, Executor
from pgqueue.errors import SchemaNotInstalled, SchemaOutdated
from pgqueue.records import JobRecord, JobStatus, QueueOverview, QueueStats, WorkerRecord
from pgqueue.sql import SCHEMA_REVISION, queries


@dataclass(frozen=True)
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


class JobStore:
    def __init__(self, pool: asyncpg.Pool, *, listen_dsn: str | None = None) -> None:
        self.pool = pool
        self._listen_dsn = listen_dsn
        self._pool_executor = AsyncpgExecutor(pool)

    async def _fetch_keeping_rows(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """``pool.fetch`` for a statement whose effect must not be lost: if the server ends the
        connection right after the rows arrived, the pool's reset on release raises, and the
        rows (jobs already claimed, or completions already committed) would be dropped."""
        connection = await self.pool.acquire()
        try:
            return await connection.fetch(sql, *args)
        finally:
            with contextlib.suppress(Exception):  # the pool has discarded the broken connection
                await self.pool.release(connection)

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

    async def enqueue(self, *, job: NewJob, executor: Executor | None = None) -> int:
        ids = await (executor or self._pool_executor).fetch_column(
            queries["enqueue"],
            job.job_type,
            job.payload,
            job.queue,
            job.run_at,
            job.delay,
            job.priority,
            job.max_attempts,
            job.retry_backoff,
        )
        return int(ids[0])

    async def enqueue_batch(
        self, *, jobs: Sequence[NewJob], executor: Executor | None = None
    ) -> list[int]:
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
        )
        return [int(i) for i in ids]

    # --- worker side -------------------------------------------------------------------------

    async def claim_jobs(
        self, *, queues: Sequence[str], job_types: Sequence[str], worker_id: UUID, max_jobs: int
    ) -> list[ClaimedJob]:
        rows = await self._fetch_keeping_rows(
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
            )
            for row in rows
        ]

    async def seconds_until_next_job(
        self, *, queues: Sequence[str], job_types: Sequence[str]
    ) -> float | None:
        seconds = await self.pool.fetchval(queries["seconds_until_next_job"].sql, queues, job_types)
        return None if seconds is None else max(float(seconds), 0.0)  # overdue: due now

    async def complete_jobs(
        self,
        *,
        ids: Sequence[int],
        attempts: Sequence[int],
        results: Sequence[str | None],
        worker_id: UUID,
        connection: asyncpg.Connection | PoolConnectionProxy | None = None,
    ) -> list[int]:
        """Returns the ids written; with ``connection``, inside its transaction."""
        sql = queries["complete_jobs"].sql
        if connection is not None:
            rows = await connection.fetch(sql, ids, attempts, results, worker_id)
        else:
            rows = await self._fetch_keeping_rows(sql, ids, attempts, results, worker_id)
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
        connection: asyncpg.Connection,
    ) -> None:
        """Register the worker, or refresh its heartbeat, on the worker's own connection."""
        await connection.execute(
            queries["heartbeat_worker"].sql, id, host, pid, queues, concurrency
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

    async def list_workers(self) -> list[WorkerRecord]:
        rows = await self.pool.fetch(queries["list_workers"].sql)
        return [WorkerRecord.model_validate(dict(row)) for row in rows]
