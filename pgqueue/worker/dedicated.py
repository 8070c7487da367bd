"""A connection kept by one of the worker's loops (claims, completions, heartbeats) for itself.

Outside the pool, so each statement costs one round trip, not three (acquire, statement, and
the pool's reset on release), and a busy pool never delays a claim. A statement that fails
closes it: its state is unknown, and the server may have gone. The next use opens a new one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from pgqueue.store import JobStore


class DedicatedConnection:
    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._connection: asyncpg.Connection | None = None

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[asyncpg.Connection]:
        if self._connection is None or self._connection.is_closed():
            self._connection = await self._store.open_connection()
        try:
            yield self._connection
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.close(timeout=5)
            except Exception:  # already broken: nothing to say goodbye to
                connection.terminate()
