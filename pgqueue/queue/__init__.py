"""Queue: the application's handle on pgqueue. Enqueue (inside your transaction), read, act.

A facade: ``Queue`` owns the pool and the store, and takes its methods from one module per
concern: ``enqueuing`` (enqueue, batches, chains, groups, the dispatch builder), ``reads``,
``actions`` (operator actions), ``controls`` (a queue's pause and limits) and ``schedules``.
"""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any, Self

import asyncpg

from pgqueue.dsn import check_dsn
from pgqueue.queue.actions import OperatorActions
from pgqueue.queue.controls import QueueControls
from pgqueue.queue.enqueuing import Enqueuing
from pgqueue.queue.reads import Reads
from pgqueue.queue.schedules import Schedules
from pgqueue.settings import resolve_dsn
from pgqueue.store import JobStore


class Queue(Enqueuing, Reads, OperatorActions, QueueControls, Schedules):
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
