"""``pgqueue work --workers N``: N worker processes under one supervisor.

Each child is linked to the supervisor by a socket pair. The child sends one byte once its
worker has registered, so the supervisor tells a child that could not start (an unreachable
database, a missing schema) from one that worked and then died (SIGKILL, the OOM killer, a job
that took the process down). When the supervisor dies, however it dies, its end of each socket
closes, and the children stop as on SIGTERM instead of running on unsupervised.

Restart policy, per slot:
- a child that registered and then died is restarted after a pause that doubles with each
  death in a row (1 s, 2 s, 4 s ... at most 30 s) while the other slots work on; a child that
  lived a minute resets its slot's pause;
- a child that exits before it registers is a start-up failure: after three in a row in one
  slot the supervisor gives up, stops every child and exits 1.
SIGTERM and SIGINT are forwarded to every child (a second signal too, so children stop at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgqueue.worker.worker import Worker

log = logging.getLogger("pgqueue.supervisor")

LINK_VARIABLE = "PGQUEUE_SUPERVISOR_FD"  # the child's end of its socket pair
_REGISTERED = b"R"
_MAX_START_FAILURES = 3  # in a row, in one slot: the supervisor gives up
_FIRST_PAUSE = 1.0  # seconds before a restart; doubles with each death in a row
_MAX_PAUSE = 30.0
_STABLE_AFTER = 60.0  # seconds a child must live for its slot's pause to start over


@dataclass(frozen=True)
class _Exit:
    pid: int
    code: int
    registered: bool
    lived: float  # seconds

    def describe(self) -> str:
        if self.code < 0:
            return f"was killed by {signal.Signals(-self.code).name}"
        return f"exited with code {self.code}"


class Supervisor:
    def __init__(self, child_args: Callable[[int], Sequence[str]], workers: int) -> None:
        self._child_args = child_args  # the command line of the child in each slot
        self._workers = workers
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()

    async def run(self) -> int:
        """Run until the children stop after a signal (0) or keep failing at start (1)."""
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
        deaths = start_failures = 0  # in a row
        while not self._stopping.is_set():
            ended = await self._run_child(slot)
            if self._stopping.is_set():
                return ended.code == 0
            if ended.registered:
                start_failures = 0
                deaths = 1 if ended.lived >= _STABLE_AFTER else deaths + 1
                pause = min(_MAX_PAUSE, _FIRST_PAUSE * 2 ** (deaths - 1))
                log.warning(
                    "worker %s (pid %s) %s after %.0fs; restarting it in %.0fs",
                    slot,
                    ended.pid,
                    ended.describe(),
                    ended.lived,
                    pause,
                )
            else:
                start_failures += 1
                if start_failures >= _MAX_START_FAILURES:
                    log.error(
                        "worker %s %s before it registered, %s times in a row; giving up",
                        slot,
                        ended.describe(),
                        start_failures,
                    )
                    self._stop_all(signal.SIGTERM)
                    return False
                pause = _FIRST_PAUSE
                log.warning(
                    "worker %s (pid %s) %s before it registered; restarting it in %.0fs",
                    slot,
                    ended.pid,
                    ended.describe(),
                    pause,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
        return True

    async def _run_child(self, slot: int) -> _Exit:
        ours, theirs = socket.socketpair()
        try:
            started = time.monotonic()
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pgqueue",
                "work",
                *self._child_args(slot),
                pass_fds=[theirs.fileno()],
                env={**os.environ, LINK_VARIABLE: str(theirs.fileno())},
            )
            theirs.close()  # the child holds it now: its exit is the only close
            self._children[slot] = child
            log.info("worker %s started (pid %s)", slot, child.pid)
            ours.setblocking(False)
            told = asyncio.ensure_future(asyncio.get_running_loop().sock_recv(ours, 1))
            told.add_done_callback(lambda _: self._registered(slot, child.pid, told))
            code = await child.wait()
            # Its end closed with it, so the read ends now (unless a process the job forked
            # holds it: then give up on the byte after a moment).
            await asyncio.wait([told], timeout=1)
            told.cancel()
            return _Exit(child.pid, code, _is_registered(told), time.monotonic() - started)
        finally:
            ours.close()
            theirs.close()

    def _registered(self, slot: int, pid: int, told: asyncio.Future[bytes]) -> None:
        if _is_registered(told):
            log.info("worker %s (pid %s) registered", slot, pid)

    def _forward(self, signum: int) -> None:
        log.info("%s: stopping %s workers", signal.Signals(signum).name, len(self._children))
        self._stop_all(signum)

    def _stop_all(self, signum: int) -> None:
        self._stopping.set()
        for child in self._children.values():
            if child.returncode is None:
                child.send_signal(signum)


def _is_registered(told: asyncio.Future[bytes]) -> bool:
    """Whether the read of a child's link got the byte it sends once registered."""
    if not told.done() or told.cancelled() or told.exception() is not None:
        return False
    return told.result() == _REGISTERED


class SupervisorLink:
    """A child's end of the link: tells the supervisor when the worker has registered, and
    stops the worker, as SIGTERM would, when the supervisor is gone."""

    def __init__(self, end: socket.socket) -> None:
        self._end = end
        self._supervisor_pid = os.getppid()

    @classmethod
    def inherited(cls) -> SupervisorLink | None:
        """The link a supervisor gave this process; None when no supervisor started it."""
        descriptor = os.environ.pop(LINK_VARIABLE, None)
        if descriptor is None:
            return None
        end = socket.socket(fileno=int(descriptor))
        end.set_inheritable(False)  # a process a job starts must not keep the link open
        end.setblocking(False)
        return cls(end)

    async def run(self, worker: Worker) -> None:
        """``worker.run()``, linked to the supervisor."""
        watching = asyncio.create_task(self._stop_when_orphaned(worker))
        running = asyncio.create_task(worker.run())
        started = asyncio.create_task(worker.wait_started())
        try:
            await asyncio.wait([running, started], return_when=asyncio.FIRST_COMPLETED)
            if started.done():
                with contextlib.suppress(OSError):  # the supervisor is gone: noticed below
                    self._end.send(_REGISTERED)
            await running
        finally:
            started.cancel()
            watching.cancel()
            self._end.close()

    async def _stop_when_orphaned(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while await loop.sock_recv(self._end, 1):  # b"": the supervisor's end closed
                pass
        await worker.wait_started()  # a worker still starting stops once it can
        log.warning("the supervisor (pid %s) is gone: stopping as on SIGTERM", self._supervisor_pid)
        await worker.stop()
