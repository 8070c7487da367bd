"""LISTEN on a connection of its own (outside the pool): wake-ups for our queues, cancels.

A notification only triggers work; its payload is never trusted for more. The connection is
checked every ``check_interval``, and at once when the server closes it. When it is lost the
listener reconnects with backoff, listens again, and wakes the fetcher, since jobs may have been
enqueued while nobody listened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from datetime import timedelta

import asyncpg

from pgqueue.sql import CANCEL_CHANNEL, JOBS_CHANNEL
from pgqueue.store import JobStore

log = logging.getLogger("pgqueue.worker")

_MAX_RECONNECT_PAUSE = 5.0  # seconds


class Listener:
    def __init__(
        self,
        store: JobStore,
        queues: Collection[str],
        check_interval: timedelta,
        on_wakeup: Callable[[], None],
        on_cancel: Callable[[int], None],
    ) -> None:
        self._store = store
        self._queues = frozenset(queues)
        self._check_interval = check_interval.total_seconds()
        self._on_wakeup = on_wakeup
        self._on_cancel = on_cancel
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._listen()
        self._task = asyncio.create_task(self._watch(), name="pgqueue-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop_connection()

    async def _listen(self) -> None:
        connection = await self._store.open_connection(for_listen=True)
        self._connection = connection
        self._lost.clear()
        connection.add_termination_listener(lambda _: self._lost.set())
        await connection.add_listener(JOBS_CHANNEL, self._notified)
        await connection.add_listener(CANCEL_CHANNEL, self._cancel_requested)

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._check_interval)
            try:
                if self._lost.is_set() or self._connection is None:
                    raise ConnectionError("the server closed the connection")
                await self._store.ping(connection=self._connection)
            except Exception as error:
                log.warning("the LISTEN connection was lost (%s); reconnecting", error)
                await self._reconnect()

    async def _reconnect(self) -> None:
        self._drop_connection()
        pause = 0.1
        while True:
            try:
                await self._listen()
            except Exception as error:
                self._drop_connection()
                log.warning("cannot listen yet (%s); retrying in %.1fs", error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_RECONNECT_PAUSE)
            else:
                log.info("listening again; looking for jobs enqueued meanwhile")
                self._on_wakeup()
                return

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()  # it may be broken: no goodbye round trip

    def _notified(self, connection: object, pid: int, channel: str, payload: object) -> None:
        if payload in self._queues:
            self._on_wakeup()

    def _cancel_requested(
        self, connection: object, pid: int, channel: str, payload: object
    ) -> None:
        if isinstance(payload, str) and payload.isdigit():
            self._on_cancel(int(payload))
