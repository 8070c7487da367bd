"""The worker's row in pgqueue.workers, beaten on a connection of its own.

A busy pool never delays a beat. The first beat registers the worker; a beat after an outage
registers it again if its row was removed meanwhile. On stop the row is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

import asyncpg

from pgqueue.store import JobStore

log = logging.getLogger("pgqueue.worker")


class Heartbeat:
    def __init__(
        self,
        store: JobStore,
        worker_id: UUID,
        queues: Sequence[str],
        concurrency: int,
        interval: timedelta,
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._queues = queues
        self._concurrency = concurrency
        self._interval = interval.total_seconds()
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.run_once()  # registered before the first claim
        self._task = asyncio.create_task(self._beat(), name="pgqueue-heartbeat")

    async def run_once(self) -> None:
        if self._connection is None:
            self._connection = await self._store.open_connection()
        try:
            await self._store.heartbeat_worker(
                id=self._worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                queues=self._queues,
                concurrency=self._concurrency,
                connection=self._connection,
            )
        except BaseException:
            self._drop_connection()  # the next beat takes a fresh one
            raise

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except Exception as error:
                log.warning("heartbeat failed (%s); retrying in %ss", error, self._interval)

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()  # it may be broken: no goodbye round trip

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop_connection()
        try:
            await self._store.deregister_worker(id=self._worker_id)
        except Exception:  # its heartbeat has stopped anyway: the row ages out
            log.warning("could not remove worker %s's row", self._worker_id, exc_info=True)
