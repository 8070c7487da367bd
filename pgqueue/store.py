"""JobStore: one typed method per named query. The only code that runs SQL.

Each query is described once, as data, by a ``JobStatements`` method of the same name: the
named query, its arguments in order, and how its rows decode (rows become pydantic records
here, at the edge: nothing above this module sees a row). ``JobStore`` runs those statements
through an executor (``pgqueue.connections``): its asyncpg pool's, or one for the connection
it was given. A synchronous store would run the same statements through a synchronous
executor. JSON travels as text in both directions, so the caller's connection codecs never
matter.

One module, over 350 lines, on purpose: every named query appears here by name once (a test
checks that the names used here equal those in ``sql/*.sql``), so grepping a query finds its
statement and its method side by side.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel

from pgqueue.connections import (
    AsyncpgExecutor,
    Executor,
    SqlAlchemySyncExecutor,
    database_error,
    transaction_for,
)
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
from pgqueue.sql import SCHEMA_REVISION, Query, Row, Statement, queries

T = TypeVar("T")
P = ParamSpec("P")
M = TypeVar("M", bound=BaseModel)

_DATABASE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")  # bench databases: checked, then quoted
_FOREIGN_KEY_VIOLATION = "23503"  # what pgqueue.enqueue_job raises for a missing parent

AnyConnection = asyncpg.Connection | PoolConnectionProxy


# --- decoders: rows -> values --------------------------------------------------------------


def _value(rows: Sequence[Row]) -> Any:
    """The first column of the first row; None when there is no row."""
    return next(iter(rows[0].values())) if rows else None


def _column(rows: Sequence[Row]) -> list[Any]:
    """The first column of every row."""
    return [next(iter(row.values())) for row in rows]


def _ids(rows: Sequence[Row]) -> list[int]:
    return [row["id"] for row in rows]


def _nothing(rows: Sequence[Row]) -> None:
    return None


def _records(model: type[M]) -> Callable[[Sequence[Row]], list[M]]:
    return lambda rows: [model.model_validate(dict(row)) for row in rows]


def _record(model: type[M]) -> Callable[[Sequence[Row]], M | None]:
    return lambda rows: model.model_validate(dict(rows[0])) if rows else None


def _status(rows: Sequence[Row]) -> JobStatus | None:
    status = _value(rows)
    return None if status is None else JobStatus(status)


def _claimed(rows: Sequence[Row]) -> list[ClaimedJob]:
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


def _schedules(rows: Sequence[Row]) -> list[ScheduleRecord]:
    return [
        ScheduleRecord.model_validate(
            {**dict(row), "next_tick": None if row["paused"] else _next_tick(row)}
        )
        for row in rows
    ]


def _next_tick(row: Row) -> datetime | None:
    """When a stored schedule ticks next; None if croniter cannot say (a row written by hand)."""
    try:
        return next_tick(
            row["cron"], row["timezone"], max(row["db_now"], row["last_tick"] or row["created_at"])
        )
    except (ValueError, LookupError):
        return None


def _due_schedules(rows: Sequence[Row]) -> tuple[datetime, list[DueSchedule]]:
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


# --- statements: one per named query -----------------------------------------------------


class JobStatements:
    """Each named query as a Statement; no I/O. Arguments in the order of its ``-- params:``."""

    @staticmethod
    def schema_is_installed() -> Statement[bool]:
        return Statement(queries["schema_is_installed"], (), lambda rows: bool(_value(rows)))

    @staticmethod
    def schema_revision() -> Statement[str | None]:
        return Statement(queries["schema_revision"], (), _value)

    @staticmethod
    def enqueue(*, job: NewJob, trace_context: str | None) -> Statement[EnqueuedJob]:
        return Statement(
            queries["enqueue"],
            (
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
            ),
            lambda rows: EnqueuedJob(rows[0]["id"], existing=rows[0]["existing"]),
        )

    @staticmethod
    def enqueue_batch(*, jobs: Sequence[NewJob], trace_context: str | None) -> Statement[list[int]]:
        return Statement(
            queries["enqueue_batch"],
            (
                [job.job_type for job in jobs],
                [job.payload for job in jobs],
                [job.queue for job in jobs],
                [job.run_at for job in jobs],
                [job.delay for job in jobs],
                [job.priority for job in jobs],
                [job.max_attempts for job in jobs],
                [job.retry_backoff for job in jobs],
                trace_context,
            ),
            _ids,
        )

    @staticmethod
    def claim_jobs(
        *, queues: Sequence[str], job_types: Sequence[str], worker_id: UUID, max_jobs: int
    ) -> Statement[list[ClaimedJob]]:
        args = (queues, job_types, worker_id, max_jobs)
        return Statement(queries["claim_jobs"], args, _claimed)

    @staticmethod
    def seconds_until_next_job(
        *, queues: Sequence[str], job_types: Sequence[str]
    ) -> Statement[float | None]:
        def decode(rows: Sequence[Row]) -> float | None:
            seconds = _value(rows)
            return None if seconds is None else max(float(seconds), 0.0)  # overdue: due now

        return Statement(queries["seconds_until_next_job"], (queues, job_types), decode)

    @staticmethod
    def queue_depths(*, queues: Sequence[str]) -> Statement[list[QueueDepth]]:
        return Statement(
            queries["queue_depths"],
            (queues,),
            lambda rows: [
                QueueDepth(row["queue"], row["ready"], row["oldest_age_seconds"]) for row in rows
            ],
        )

    @staticmethod
    def complete_jobs(
        *,
        ids: Sequence[int],
        attempts: Sequence[int],
        results: Sequence[str | None],
        worker_id: UUID,
    ) -> Statement[list[int]]:
        return Statement(queries["complete_jobs"], (ids, attempts, results, worker_id), _ids)

    @staticmethod
    def fail_job(
        *,
        id: int,
        attempt: int,
        worker_id: UUID,
        error: str,
        last_error: str,
        retry_delay: timedelta,
        permanent: bool,
        default_max_attempts: int,
    ) -> Statement[JobStatus | None]:
        """The job's new status, or None when this worker no longer held the job."""
        args = (
            *(id, attempt, worker_id, error, last_error),
            *(retry_delay, permanent, default_max_attempts),
        )
        return Statement(queries["fail_job"], args, _status)

    @staticmethod
    def snooze_job(*, id: int, attempt: int, worker_id: UUID, delay: timedelta) -> Statement[bool]:
        """False when this worker no longer held the job."""
        return Statement(
            queries["snooze_job"], (id, attempt, worker_id, delay), lambda rows: bool(rows)
        )

    @staticmethod
    def parent_results(*, ids: Sequence[int]) -> Statement[list[ParentResult]]:
        return Statement(
            queries["parent_results"],
            (ids,),
            lambda rows: [
                ParentResult(row["id"], row["job_type"], JobStatus(row["status"]), row["result"])
                for row in rows
            ],
        )

    @staticmethod
    def cancelled_among(*, ids: Sequence[int]) -> Statement[list[int]]:
        return Statement(queries["cancelled_among"], (ids,), _ids)

    @staticmethod
    def rescue_expired_jobs(
        *, heartbeat_timeout: timedelta, default_max_attempts: int
    ) -> Statement[list[int]]:
        args = (heartbeat_timeout, default_max_attempts)
        return Statement(queries["rescue_expired_jobs"], args, _ids)

    @staticmethod
    def release_unheld_jobs(
        *, worker_id: UUID, held_ids: Sequence[int], claimed_before: timedelta
    ) -> Statement[list[int]]:
        args = (worker_id, held_ids, claimed_before)
        return Statement(queries["release_unheld_jobs"], args, _ids)

    @staticmethod
    def release_worker_jobs(*, worker_id: UUID) -> Statement[list[int]]:
        return Statement(queries["release_worker_jobs"], (worker_id,), _ids)

    @staticmethod
    def heartbeat_worker(
        *,
        id: UUID,
        host: str,
        pid: int,
        queues: Sequence[str],
        concurrency: int,
        heartbeat_timeout: timedelta,
    ) -> Statement[None]:
        args = (id, host, pid, queues, concurrency, heartbeat_timeout)
        return Statement(queries["heartbeat_worker"], args, _nothing)

    @staticmethod
    def deregister_worker(*, id: UUID) -> Statement[None]:
        return Statement(queries["deregister_worker"], (id,), _nothing)

    @staticmethod
    def delete_expired_workers(*, heartbeat_timeout: timedelta) -> Statement[int]:
        return Statement(
            queries["delete_expired_workers"], (heartbeat_timeout,), lambda rows: int(_value(rows))
        )

    @staticmethod
    def ping() -> Statement[None]:
        return Statement(queries["ping"], (), _nothing)

    @staticmethod
    def get_job(*, id: int) -> Statement[JobRecord | None]:
        return Statement(queries["get_job"], (id,), _record(JobRecord))

    @staticmethod
    def get_job_status(*, id: int) -> Statement[JobStatus | None]:
        return Statement(queries["get_job_status"], (id,), _status)

    @staticmethod
    def list_recent_jobs(
        *, limit: int, status: JobStatus | None, queue: str | None
    ) -> Statement[list[JobRecord]]:
        args = (limit, status, queue)
        return Statement(queries["list_recent_jobs"], args, _records(JobRecord))

    @staticmethod
    def stats(*, queue: str | None) -> Statement[QueueStats]:
        def decode(rows: Sequence[Row]) -> QueueStats:
            counts: dict[str, Any] = dict(rows[0]) if rows else {}
            return QueueStats(queue=queue, **counts)

        return Statement(queries["stats"], (queue,), decode)

    @staticmethod
    def cancel_job(*, id: int) -> Statement[bool]:
        return Statement(queries["cancel_job"], (id,), lambda rows: bool(_value(rows)))

    @staticmethod
    def retry_job(*, id: int) -> Statement[bool]:
        return Statement(queries["retry_job"], (id,), lambda rows: bool(_value(rows)))

    @staticmethod
    def retry_failed_jobs(*, queue: str | None, job_type: str | None) -> Statement[int]:
        args = (queue, job_type)
        return Statement(queries["retry_failed_jobs"], args, lambda rows: int(_value(rows)))

    @staticmethod
    def retry_failed_ids(*, ids: Sequence[int]) -> Statement[int]:
        args = (list(ids),)
        return Statement(queries["retry_failed_ids"], args, lambda rows: int(_value(rows)))

    @staticmethod
    def clear_jobs(*, status: JobStatus, queue: str | None) -> Statement[int]:
        return Statement(queries["clear_jobs"], (status, queue), lambda rows: int(_value(rows)))

    @staticmethod
    def prune_jobs(*, status: JobStatus, older_than: timedelta, batch_size: int) -> Statement[int]:
        """One batch; 0 also when another worker holds the pruning lock."""
        args = (status, older_than, batch_size)
        return Statement(queries["prune_jobs"], args, lambda rows: int(_value(rows)))

    @staticmethod
    def queue_overview() -> Statement[list[QueueOverview]]:
        return Statement(queries["queue_overview"], (), _records(QueueOverview))

    @staticmethod
    def list_failed_jobs(
        *, queue: str | None, job_type: str | None, limit: int
    ) -> Statement[list[JobRecord]]:
        args = (queue, job_type, limit)
        return Statement(queries["list_failed_jobs"], args, _records(JobRecord))

    @staticmethod
    def list_jobs(
        *,
        status: JobStatus | None,
        queue: str | None,
        job_type: str | None,
        since: datetime | None,
        until: datetime | None,
        before_id: int | None,
        before_finished_at: datetime | None,
        limit: int,
    ) -> Statement[list[JobSummary]]:
        """A finished status is listed by (finished_at, id), ``before_finished_at`` being the
        cursor's finished_at; any other by id, and ``before_finished_at`` is not used."""
        args: tuple[object, ...] = (status, queue, job_type, since, until, before_id, limit)
        if status is not None and status.is_finished:
            return Statement(
                queries["list_finished_jobs"], (*args, before_finished_at), _records(JobSummary)
            )
        return Statement(queries["list_jobs"], args, _records(JobSummary))

    @staticmethod
    def job_relations(*, id: int) -> Statement[JobRelations | None]:
        return Statement(queries["job_relations"], (id,), _record(JobRelations))

    @staticmethod
    def queue_summary() -> Statement[list[QueueSummary]]:
        return Statement(queries["queue_summary"], (), _records(QueueSummary))

    @staticmethod
    def throughput(*, minutes: int) -> Statement[list[ThroughputMinute]]:
        return Statement(queries["throughput"], (minutes,), _records(ThroughputMinute))

    @staticmethod
    def cancel_failed_jobs(*, ids: Sequence[int]) -> Statement[list[int]]:
        return Statement(queries["cancel_failed_jobs"], (list(ids),), _ids)

    @staticmethod
    def list_workers() -> Statement[list[WorkerRecord]]:
        return Statement(queries["list_workers"], (), _records(WorkerRecord))

    @staticmethod
    def set_queue_paused(*, queue: str, paused: bool) -> Statement[None]:
        return Statement(queries["set_queue_paused"], (queue, paused), _nothing)

    @staticmethod
    def set_queue_limits(
        *, queue: str, limit: QueueLimit, keep_unset: bool = False
    ) -> Statement[None]:
        """A limit that is None is removed, or with ``keep_unset`` left as it was."""
        period = None if limit.rate is None else limit.period
        args = (queue, limit.concurrency, limit.rate, period, keep_unset)
        return Statement(queries["set_queue_limits"], args, _nothing)

    @staticmethod
    def save_schedule(*, schedule: Schedule, in_code: bool) -> Statement[bool]:
        """False when a schedule of that name is of the other kind (code / add_schedule)."""
        args = (
            *(schedule.name, schedule.cron, schedule.timezone, schedule.job_type),
            *(schedule.payload, schedule.queue, schedule.priority, schedule.max_attempts),
            *(schedule.missed, in_code),
        )
        return Statement(queries["save_schedule"], args, lambda rows: _value(rows) is not None)

    @staticmethod
    def list_schedules() -> Statement[list[ScheduleRecord]]:
        return Statement(queries["list_schedules"], (), _schedules)

    @staticmethod
    def set_schedule_paused(*, name: str, paused: bool) -> Statement[bool]:
        """False when there is no such schedule."""
        args = (name, paused)
        return Statement(queries["set_schedule_paused"], args, lambda rows: bool(rows))

    @staticmethod
    def delete_schedule(*, name: str) -> Statement[bool]:
        return Statement(queries["delete_schedule"], (name,), lambda rows: bool(rows))

    @staticmethod
    def due_schedules(
        *,
        declared_names: Sequence[str],
    ) -> Statement[tuple[datetime, list[DueSchedule]]]:
        """The database clock, and the schedules this worker keeps."""
        return Statement(queries["due_schedules"], (declared_names,), _due_schedules)

    @staticmethod
    def enqueue_schedule_ticks(
        *, name: str, seen_updated_at: datetime, ticks: Sequence[datetime], done_until: datetime
    ) -> Statement[list[int]]:
        args = (name, seen_updated_at, ticks, done_until)
        return Statement(queries["enqueue_schedule_ticks"], args, _ids)


# --- the store: runs the statements ------------------------------------------------------


def _on_pool(
    build: Callable[P, Statement[T]],
) -> Callable[Concatenate[JobStore, P], Coroutine[Any, Any, T]]:
    """A JobStore method that runs the statement ``build`` describes on the pool, taking
    ``build``'s keywords (a synchronous store would wrap the same builders the same way)."""

    async def method(store: JobStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await store._pool_executor.run(build(*args, **kwargs))

    # The builder's name and docstring, for help(); not its signature, which returns a Statement.
    method.__name__, method.__qualname__ = build.__name__, f"JobStore.{build.__name__}"
    method.__doc__ = build.__doc__
    return method


class JobStore:
    """Runs ``JobStatements`` on its asyncpg pool, or on the connection a method is given.

    Most methods run on the pool and are the builder itself, wrapped (``_on_pool``); those
    written out take a connection, or translate an error."""

    def __init__(self, pool: asyncpg.Pool, *, listen_dsn: str | None = None) -> None:
        self.pool = pool
        self._listen_dsn = listen_dsn
        self._pool_executor = AsyncpgExecutor(pool)

    async def _run(self, statement: Statement[T], on: AnyConnection | None) -> T:
        executor = self._pool_executor if on is None else AsyncpgExecutor(on)
        return await executor.run(statement)

    # --- connections ---------------------------------------------------------------------

    async def close(self) -> None:
        await self.pool.close()

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

    @contextlib.asynccontextmanager
    async def lend_connection(self) -> AsyncIterator[PoolConnectionProxy]:
        """One of the pool's connections for the application's own statements; its session
        state (SET, LISTEN, advisory locks) is reset before it goes back, since the pool's own
        release does not (Queue.connect())."""
        connection = await self.pool.acquire()
        try:
            yield connection
        finally:
            try:
                with contextlib.suppress(Exception):  # gone: release() then discards it
                    await connection.reset()
            finally:
                await self.pool.release(connection)

    def transaction(
        self, connection: object | None
    ) -> contextlib.AbstractAsyncContextManager[Executor]:
        """An executor whose statements commit or roll back together (``transaction_for``)."""
        return transaction_for(connection, self.pool)

    async def check_schema(self) -> None:
        """Raise unless the database's pgqueue schema is at least the revision this code needs."""
        async with self.pool.acquire() as connection:
            if not await self._run(JobStatements.schema_is_installed(), connection):
                raise SchemaNotInstalled
            found = await self._run(JobStatements.schema_revision(), connection)
        if found is None or int(found) < int(SCHEMA_REVISION):
            raise SchemaOutdated(str(found), SCHEMA_REVISION)

    # --- enqueue (may run on the caller's connection) ---------------------------------------

    async def enqueue(
        self, *, job: NewJob, executor: Executor | None = None, trace_context: str | None = None
    ) -> EnqueuedJob:
        """Raises InvalidJob when a parent in ``depends_on`` does not exist. ``trace_context``:
        JSON text of the enqueuer's trace headers, stored with the job."""
        statement = JobStatements.enqueue(job=job, trace_context=trace_context)
        try:
            return await (executor or self._pool_executor).run(statement)
        except Exception as error:
            raised = database_error(error)
            if raised is not None and raised[0] == _FOREIGN_KEY_VIOLATION:
                raise InvalidJob(raised[1]) from error
            raise

    async def enqueue_batch(
        self,
        *,
        jobs: Sequence[NewJob],
        executor: Executor | None = None,
        trace_context: str | None = None,
    ) -> list[int]:
        """``trace_context``: as for ``enqueue``, one for the whole batch."""
        statement = JobStatements.enqueue_batch(jobs=jobs, trace_context=trace_context)
        return await (executor or self._pool_executor).run(statement)

    # --- on a connection the worker keeps ----------------------------------------------------

    async def claim_jobs(
        self,
        *,
        queues: Sequence[str],
        job_types: Sequence[str],
        worker_id: UUID,
        max_jobs: int,
        connection: AnyConnection,
    ) -> list[ClaimedJob]:
        """On ``connection``, not the pool: the rows are the claim, so a connection that breaks
        as the pool resets it must not lose them (the worker keeps one for claims)."""
        statement = JobStatements.claim_jobs(
            queues=queues, job_types=job_types, worker_id=worker_id, max_jobs=max_jobs
        )
        return await self._run(statement, connection)

    async def seconds_until_next_job(
        self,
        *,
        queues: Sequence[str],
        job_types: Sequence[str],
        connection: asyncpg.Connection | None = None,
    ) -> float | None:
        statement = JobStatements.seconds_until_next_job(queues=queues, job_types=job_types)
        return await self._run(statement, connection)

    async def complete_jobs(
        self,
        *,
        ids: Sequence[int],
        attempts: Sequence[int],
        results: Sequence[str | None],
        worker_id: UUID,
        connection: AnyConnection,
    ) -> list[int]:
        """Returns the ids written; on ``connection`` (in its transaction, if one is open), as
        claim_jobs, so committed completions are never lost with a connection reset. Any order
        of ``ids`` will do: pgqueue.complete_jobs locks the rows in id order itself."""
        statement = JobStatements.complete_jobs(
            ids=ids, attempts=attempts, results=results, worker_id=worker_id
        )
        return await self._run(statement, connection)

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
        statement = JobStatements.heartbeat_worker(
            id=id,
            host=host,
            pid=pid,
            queues=queues,
            concurrency=concurrency,
            heartbeat_timeout=heartbeat_timeout,
        )
        await self._run(statement, connection)

    async def ping(self, *, connection: asyncpg.Connection) -> None:
        await self._run(JobStatements.ping(), connection)

    # --- on the pool ---------------------------------------------------------------------------

    queue_depths = _on_pool(JobStatements.queue_depths)
    fail_job = _on_pool(JobStatements.fail_job)
    snooze_job = _on_pool(JobStatements.snooze_job)
    parent_results = _on_pool(JobStatements.parent_results)
    cancelled_among = _on_pool(JobStatements.cancelled_among)
    rescue_expired_jobs = _on_pool(JobStatements.rescue_expired_jobs)
    release_unheld_jobs = _on_pool(JobStatements.release_unheld_jobs)
    release_worker_jobs = _on_pool(JobStatements.release_worker_jobs)
    deregister_worker = _on_pool(JobStatements.deregister_worker)
    delete_expired_workers = _on_pool(JobStatements.delete_expired_workers)

    get_job = _on_pool(JobStatements.get_job)
    get_job_status = _on_pool(JobStatements.get_job_status)
    list_recent_jobs = _on_pool(JobStatements.list_recent_jobs)
    stats = _on_pool(JobStatements.stats)
    cancel_job = _on_pool(JobStatements.cancel_job)
    retry_job = _on_pool(JobStatements.retry_job)
    retry_failed_jobs = _on_pool(JobStatements.retry_failed_jobs)
    retry_failed_ids = _on_pool(JobStatements.retry_failed_ids)
    clear_jobs = _on_pool(JobStatements.clear_jobs)
    prune_jobs = _on_pool(JobStatements.prune_jobs)
    queue_overview = _on_pool(JobStatements.queue_overview)
    list_failed_jobs = _on_pool(JobStatements.list_failed_jobs)
    list_jobs = _on_pool(JobStatements.list_jobs)
    job_relations = _on_pool(JobStatements.job_relations)
    queue_summary = _on_pool(JobStatements.queue_summary)
    throughput = _on_pool(JobStatements.throughput)
    cancel_failed_jobs = _on_pool(JobStatements.cancel_failed_jobs)
    list_workers = _on_pool(JobStatements.list_workers)

    set_queue_paused = _on_pool(JobStatements.set_queue_paused)
    set_queue_limits = _on_pool(JobStatements.set_queue_limits)

    save_schedule = _on_pool(JobStatements.save_schedule)
    list_schedules = _on_pool(JobStatements.list_schedules)
    set_schedule_paused = _on_pool(JobStatements.set_schedule_paused)
    delete_schedule = _on_pool(JobStatements.delete_schedule)
    due_schedules = _on_pool(JobStatements.due_schedules)
    enqueue_schedule_ticks = _on_pool(JobStatements.enqueue_schedule_ticks)


def _on_database(template: str, name: str) -> Statement[None]:
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"not a database name pgqueue makes: {name!r}")
    return Statement(Query("database", template.format(f'"{name}"'), ()), (), _nothing)


class BenchStore:
    """``pgqueue bench``'s own statements (``sql/bench.sql``), on a connection of its own:
    rows put straight into the table, cheap counts, and what a run reports about the server."""

    def __init__(self, connection: AnyConnection) -> None:
        self._executor = AsyncpgExecutor(connection)

    async def _value(self, query: Query, *args: object) -> Any:
        return await self._executor.run(Statement(query, args, _value))

    async def create_database(self, name: str) -> None:
        """CREATE DATABASE ``name``: a name pgqueue made (an identifier no named query can take
        as a parameter, so it is checked, then quoted)."""
        await self._executor.run(_on_database("CREATE DATABASE {}", name))

    async def drop_database(self, name: str) -> None:
        await self._executor.run(_on_database("DROP DATABASE {} WITH (FORCE)", name))

    async def insert_finished_jobs(
        self,
        *,
        queue: str,
        job_type: str,
        worker_id: UUID,
        first: int,
        last: int,
        rows: int,
        newest: datetime,
        spread: timedelta,
    ) -> None:
        args = (queue, job_type, worker_id, first, last, rows, newest, spread)
        await self._executor.run(Statement(queries["insert_finished_jobs"], args, _nothing))

    async def insert_pending_jobs(
        self, *, queue: str, job_type: str, rows: int, due_in: timedelta
    ) -> None:
        args = (queue, job_type, rows, due_in)
        await self._executor.run(Statement(queries["insert_pending_jobs"], args, _nothing))

    async def database_time_ago(self, age: timedelta) -> datetime:
        moment: datetime = await self._value(queries["database_time_ago"], age)
        return moment

    async def vacuum_analyze_jobs(self) -> None:
        await self._executor.run(Statement(queries["vacuum_analyze_jobs"], (), _nothing))

    async def checkpoint(self) -> None:
        await self._executor.run(Statement(queries["checkpoint"], (), _nothing))

    async def count_pending_jobs(self, queue: str) -> int:
        return int(await self._value(queries["count_pending_jobs"], queue))

    async def count_completed_jobs(self) -> int:
        return int(await self._value(queries["count_completed_jobs"]))

    async def count_completed_between(self, first: int, last: int) -> int:
        return int(await self._value(queries["count_completed_between"], first, last))

    async def count_finished_by(self, moment: datetime) -> int:
        return int(await self._value(queries["count_finished_by"], moment))

    async def server_version(self) -> str:
        return str(await self._value(queries["server_version"]))

    async def backend_pid(self) -> int:
        return int(await self._value(queries["backend_pid"]))

    async def other_client_backends(self, excluded: Sequence[int]) -> list[int]:
        """The pids of this database's client sessions but ``excluded``."""
        statement = Statement(queries["other_client_backends"], (list(excluded),), _column)
        return await self._executor.run(statement)


class MigrationStore:
    """What ``pgqueue.migrate`` runs on alembic's synchronous SQLAlchemy connection, in its
    transaction, before the revisions (``sql/migrate.sql``)."""

    def __init__(self, connection: Any) -> None:
        self._executor = SqlAlchemySyncExecutor(connection)

    def prepare_schema(self) -> None:
        """Create the schema alembic's version table lives in; serialise concurrent migrations."""
        self._executor.run(Statement(queries["create_schema"], (), _nothing))
        self._executor.run(Statement(queries["lock_migrations"], (), _nothing))
