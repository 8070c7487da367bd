"""LISTEN for enqueue notifications and wake the fetcher when one concerns our queues.

A notification only triggers a fetch; its payload (a queue name) is never trusted for more.
Polling stays the backstop should the listening connection be lost.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from pgqueue.sql import JOBS_CHANNEL

log = logging.getLogger("pgqueue.worker")


class Listener:
    def __init__(
        self, pool: asyncpg.Pool, queues: Collection[str], on_wakeup: Callable[[], None]
    ) -> None:
        self._pool = pool
        self._queues = frozenset(queues)
        self._on_wakeup = on_wakeup
        self._connection: PoolConnectionProxy | None = None

    async def start(self) -> None:
        # One pooled connection is held for the worker's lifetime: LISTEN is session state.
        self._connection = await self._pool.acquire()
        await self._connection.add_listener(JOBS_CHANNEL, self._notified)

    async def close(self) -> None:
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            await connection.remove_listener(JOBS_CHANNEL, self._notified)
        except Exception:  # lost or broken (asyncpg raises several kinds)
            log.warning("the listening connection was lost", exc_info=True)
        finally:
            # The pool ignores a connection it already took back and terminates (then re-raises
            # for) one it cannot reset: either way it is not reused.
            with contextlib.suppress(Exception):
                await self._pool.release(connection)

    def _notified(self, connection: object, pid: int, channel: str, payload: object) -> None:
        if payload in self._queues:
            self._on_wakeup()
