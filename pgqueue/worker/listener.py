"""LISTEN on a connection of its own (outside the pool): wake-ups for our queues, cancels.

A notification only triggers work; its payload is never trusted for more. The connection is
checked every ``check_interval``, and at once when the server closes it. When it is lost the
listener reconnects with backoff, listens again, and wakes the fetcher, since jobs may have been
enqueued while nobody listened. Every worker that listens runs one (``listen=False``: none).
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
from pgqueue.worker.service import ErrorPause, Service

log = logging.getLogger("pgqueue.worker")

_MAX_RECONNECT_PAUSE = 5.0  # seconds


class Listener(Service[None]):
    """Runs on every worker that listens: its rounds check the connection, and a failed check
    reconnects (with backoff) before the next."""

    task_name = "pgqueue-listener"

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

    async def start(self) -> None:
        await self._listen()
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        self._drop_connection()

    async def _listen(self) -> None:
        connection = await self._store.open_connection(for_listen=True)
        self._connection = connection
        self._lost.clear()
        connection.add_termination_listener(lambda _: self._lost.set())
        await connection.add_listener(JOBS_CHANNEL, self._notified)
        await connection.add_listener(CANCEL_CHANNEL, self._cancel_requested)

    async def run_once(self) -> None:
        """Check the connection: raises if it is lost."""
        if self._lost.is_set() or self._connection is None:
            raise ConnectionError("the server closed the connection")
        await self._store.ping(connection=self._connection)

    def _first_pause(self) -> float:
        return self._check_interval

    def _pause_after(self, outcome: None) -> float:
        return self._check_interval

    async def _wait(self, seconds: float) -> None:
        """Until the next check, or at once when the server closes the connection."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lost.wait(), seconds)

    async def _failed(self, error: Exception) -> float:
        log.warning("the LISTEN connection was lost (%s); reconnecting", error)
        await self._reconnect()
        return self._check_interval

    async def _reconnect(self) -> None:
        self._drop_connection()
        pause = ErrorPause(first=0.1, longest=_MAX_RECONNECT_PAUSE)
        while True:
            try:
                await self._listen()
            except Exception as error:
                self._drop_connection()
                log.warning("cannot listen yet (%s); retrying in %.1fs", error, pause.seconds)
                await asyncio.sleep(pause.seconds)
                pause.lengthen()
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
