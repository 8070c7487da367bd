"""The worker's row in pgqueue.workers, beaten from a thread of its own.

The thread has its own event loop and connection, so neither a busy pool nor a handler that
blocks the worker's event loop delays a beat: a job whose ``async def handle()`` calls
``time.sleep()`` is not rescued while it still runs. The thread also watches the worker's loop
(``LoopWatch``) and stops beating while the loop is hung past its limit, so a worker that can no
longer run anything counts as dead once its lease runs out.

The first beat registers the worker with its lease; a beat after an outage registers it again
if its row was removed meanwhile. On stop the row is deleted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from pgqueue.store import JobStore
from pgqueue.worker.dedicated import DedicatedConnection
from pgqueue.worker.loop_watch import LoopWatch

log = logging.getLogger("pgqueue.worker")

_WATCH_INTERVAL = 0.25  # seconds between looks at the worker's loop


class Heartbeat:
    """Runs on every worker, each beating its own row.

    Not a ``Service``: a service is a task on the worker's event loop, and the point of the
    heartbeat is to keep beating while that loop is busy or blocked, so it runs a thread with a
    loop and connection of its own, and its first beat must succeed before ``start()`` returns.
    """

    def __init__(
        self,
        store: JobStore,
        worker_id: UUID,
        queues: Sequence[str],
        concurrency: int,
        *,
        interval: timedelta,
        lease: timedelta,
        watch: LoopWatch,
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._queues = queues
        self._concurrency = concurrency
        self._interval = interval.total_seconds()
        self._lease = lease
        self._watch = watch
        self._connection = DedicatedConnection(store)  # used on the thread's own loop only
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        """Start beating; returns once the first beat registered the worker (or raises)."""
        self._watch.start()
        registered: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopped.clear()
        self._thread = threading.Thread(
            target=self._run, args=(registered,), name="pgqueue-heartbeat", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(registered)

    async def stop(self) -> None:
        self._watch.stop()
        self._stopped.set()
        if self._thread is not None:
            # A beat in flight ends within its timeout; the thread is a daemon, so a hung one
            # cannot keep the process alive.
            await asyncio.to_thread(self._thread.join, self._lease.total_seconds())
        try:
            await self._store.deregister_worker(id=self._worker_id)
        except Exception:  # its heartbeat has stopped anyway: the row ages out
            log.warning("could not remove worker %s's row", self._worker_id, exc_info=True)

    def _run(self, registered: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(self._beat())
            except BaseException as error:
                registered.set_exception(error)
                return
            registered.set_result(None)
            self._keep_beating(loop)
        finally:
            loop.run_until_complete(self._connection.close())
            loop.close()

    def _keep_beating(self, loop: asyncio.AbstractEventLoop) -> None:
        next_beat = time.monotonic() + self._interval
        while not self._stopped.wait(min(_WATCH_INTERVAL, self._interval)):
            hung = self._watch.check()
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + self._interval
            if hung:
                continue  # silent on purpose: the worker is to count as dead
            try:
                loop.run_until_complete(self._beat())
            except Exception as error:
                log.warning("heartbeat failed (%r); retrying in %ss", error, self._interval)

    async def _beat(self) -> None:
        # Bounded by the lease: past it the worker counts as dead anyway.
        async with asyncio.timeout(self._lease.total_seconds()), self._connection.use() as conn:
            await self._store.heartbeat_worker(
                id=self._worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                queues=self._queues,
                concurrency=self._concurrency,
                heartbeat_timeout=self._lease,
                connection=conn,
            )
