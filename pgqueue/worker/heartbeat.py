"""The worker's row in pgqueue.workers: registered at start, beating while alive, then removed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

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
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._store.register_worker(
            id=self._worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self._queues,
            concurrency=self._concurrency,
        )
        self._task = asyncio.create_task(self._beat(), name="pgqueue-heartbeat")

    async def run_once(self) -> None:
        await self._store.heartbeat_worker(id=self._worker_id)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except Exception:  # a missed beat is retried next interval
                log.warning("heartbeat failed; retrying in %ss", self._interval, exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._store.deregister_worker(id=self._worker_id)
        except Exception:  # its heartbeat stops anyway: the row just ages out
            log.warning("could not remove worker %s's row", self._worker_id, exc_info=True)
