"""The shape of the worker's background services: ``start()``, a loop of ``run_once()`` with a
pause between rounds, ``stop()``.

A service says how long to pause before its first round (``_first_pause``) and after each
(``_pause_after``, given what ``run_once()`` returned), what to do when a round raises
(``_failed``: log, recover, and return the pause, often from an ``ErrorPause``), and how to
wait (``_wait``: a plain sleep unless it overrides it). ``run_once()`` is the step a test calls
directly. Each service keeps its own timing, messages and backoff; the base holds the task.

Not services: the heartbeat beats from a thread of its own (see heartbeat.py), and the fetcher
is the worker's main loop (``Worker.run`` awaits it; it stops by a flag, letting claims finish).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from typing import ClassVar, Generic, TypeVar

Outcome = TypeVar("Outcome")


class ErrorPause:
    """A pause that doubles with each failure in a row, from ``first`` up to ``longest``."""

    def __init__(self, *, first: float, longest: float, least: float = 0.0) -> None:
        self._first = first
        self._longest = longest
        self._least = least
        self.seconds = first

    def lengthen(self) -> float:
        """After a failure: the next pause, twice the last (at least ``least``)."""
        self.seconds = min(max(self.seconds * 2, self._least), self._longest)
        return self.seconds

    def reset(self) -> None:
        self.seconds = self._first


class Service(abc.ABC, Generic[Outcome]):
    """A background task that calls ``run_once()`` in a loop until stopped."""

    task_name: ClassVar[str]
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @abc.abstractmethod
    async def run_once(self) -> Outcome:
        """One round of the service's work."""

    def _first_pause(self) -> float | None:
        """Seconds to wait before the first round; None: start at once."""
        return None

    @abc.abstractmethod
    def _pause_after(self, outcome: Outcome) -> float:
        """Seconds to wait before the next round, given what ``run_once()`` returned."""

    @abc.abstractmethod
    async def _failed(self, error: Exception) -> float:
        """A round raised: log it (and recover); returns the seconds to wait before the next."""

    async def _wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _loop(self) -> None:
        pause = self._first_pause()
        while True:
            if pause is not None:
                await self._wait(pause)
            try:
                pause = self._pause_after(await self.run_once())
            except Exception as error:
                pause = await self._failed(error)
