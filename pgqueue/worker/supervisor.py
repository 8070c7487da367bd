"""``pgqueue work --workers N``: N worker processes under one supervisor.

The supervisor restarts a child that dies, forwards SIGTERM/SIGINT to every child (a second
signal is forwarded too, so children stop at once), and gives up, stopping the others and
exiting non-zero, when children keep crashing right after they start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("pgqueue.supervisor")

# A child that exits within this many seconds of starting counted as crashing at start; after
# this many such crashes in a row the supervisor gives up.
_EARLY_EXIT_SECONDS = 5.0
_MAX_EARLY_EXITS = 3
_RESTART_PAUSE = 1.0


class Supervisor:
    def __init__(self, child_args: Callable[[int], Sequence[str]], workers: int) -> None:
        self._child_args = child_args  # the command line of the child in each slot
        self._workers = workers
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._early_exits = 0

    async def run(self) -> int:
        """Run until the children stop after a signal (0) or keep crashing at start (1)."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._forward, signum)
        try:
            slots = [asyncio.create_task(self._keep_running(slot)) for slot in range(self._workers)]
            results = await asyncio.gather(*slots)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        return 0 if all(results) else 1

    async def _keep_running(self, slot: int) -> bool:
        """Run one child after another in this slot; False if the supervisor gave up."""
        while not self._stopping.is_set():
            started = time.monotonic()
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pgqueue", "work", *self._child_args(slot)
            )
            self._children[slot] = child
            log.info("worker %s started (pid %s)", slot, child.pid)
            code = await child.wait()
            if self._stopping.is_set():
                return code == 0
            early = time.monotonic() - started < _EARLY_EXIT_SECONDS
            self._early_exits = self._early_exits + 1 if early else 0
            if self._early_exits >= _MAX_EARLY_EXITS:
                log.error(
                    "workers keep exiting right after they start (last: code %s); giving up", code
                )
                self._stop_all(signal.SIGTERM)
                return False
            log.warning(
                "worker %s (pid %s) exited with code %s; restarting it", slot, child.pid, code
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), _RESTART_PAUSE)
        return True

    def _forward(self, signum: int) -> None:
        log.info("%s: stopping %s workers", signal.Signals(signum).name, len(self._children))
        self._stop_all(signum)

    def _stop_all(self, signum: int) -> None:
        self._stopping.set()
        for child in self._children.values():
            if child.returncode is None:
                child.send_signal(signum)
