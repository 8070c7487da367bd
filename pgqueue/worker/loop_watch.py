"""How long the worker's event loop has been blocked, and by what, seen from another thread.

An ``async def`` handler that calls ``time.sleep()`` or computes for long holds the loop: no
other job, claim or completion moves until it yields. A callback on the loop stamps the time
every tick; the heartbeat thread asks ``check()``, which warns once a block passes
``warn_after`` (naming the task that holds the loop and the line it is on), and reports the
loop hung once the block passes ``hung_after``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from datetime import timedelta

log = logging.getLogger("pgqueue.worker")

_TICK = 0.1  # seconds between the loop's stamps: a block shorter than this goes unseen
WARN_AFTER = timedelta(seconds=1)


class LoopWatch:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        hung_after: timedelta,
        warn_after: timedelta = WARN_AFTER,
    ) -> None:
        self._loop = loop
        self._thread_id = threading.get_ident()  # made on the loop's own thread
        self._hung_after = hung_after.total_seconds()
        self._warn_after = warn_after.total_seconds()
        self._stamped = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._blocker: str | None = None  # what held the loop when the current block was seen
        self._longest = 0.0
        self._hung = False

    def start(self) -> None:
        self._stamp()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _stamp(self) -> None:
        self._stamped = time.monotonic()
        self._handle = self._loop.call_later(_TICK, self._stamp)

    def check(self) -> bool:
        """From another thread: log what a block is doing; whether the loop is hung."""
        blocked = max(0.0, time.monotonic() - self._stamped - _TICK)
        if blocked < self._warn_after:
            if self._blocker is not None:
                log.warning(
                    "the event loop ran again after %s held it for about %.1fs",
                    self._blocker,
                    self._longest,
                )
                self._blocker, self._hung = None, False
            return False
        self._longest = blocked
        if self._blocker is None:
            self._blocker = self._holder()
            log.warning(
                "%s has blocked the event loop for %.1fs%s: no other job, claim or completion "
                "of this worker moves meanwhile. An async handler must await instead of "
                "blocking; a plain `def handle()` runs in a thread of its own",
                self._blocker,
                blocked,
                self._where(),
            )
        if blocked >= self._hung_after and not self._hung:
            self._hung = True
            log.error(
                "%s has blocked the event loop for %.0fs, past the blocked-loop timeout: this "
                "worker stops heartbeating, so it counts as dead once its lease runs out and its "
                "jobs go back to the queue",
                self._blocker,
                blocked,
            )
        return self._hung

    def _holder(self) -> str:
        """The task that holds the loop (the worker names each job's task for its job)."""
        task = asyncio.current_task(self._loop)
        return "a callback" if task is None else task.get_name()

    def _where(self) -> str:
        """The line the loop's thread is on."""
        frame = sys._current_frames().get(self._thread_id)
        if frame is None:
            return ""
        return f", at {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
