"""Job classes for the fault-injection tests; subprocess workers import them with
``--app tests.jobs,tests.e2e.fault_jobs``. Each records every start (and end) in the file named
in its payload, with the attempt number, so a test can tell how often it ran and which attempt.
"""

from __future__ import annotations

import asyncio
import os
import time

from pgqueue import Job
from tests.jobs import record

APPS = "tests.jobs,tests.e2e.fault_jobs"


class HangsOnFirstAttempt(Job, queue="tests"):
    """The first attempt records its start and hangs; any later one finishes at once."""

    log_path: str

    async def handle(self) -> int:
        attempt = self.context.attempt
        record(self.log_path, f"start {self.context.job_id} {attempt}")
        if attempt == 1:
            await asyncio.sleep(3600)
        record(self.log_path, f"end {self.context.job_id} {attempt}")
        return attempt


class KillsItsWorker(Job, queue="tests", max_retries=1):
    """Takes its whole worker process down, every attempt: nothing can record the failure."""

    log_path: str

    async def handle(self) -> None:
        record(self.log_path, f"start {self.context.job_id} {self.context.attempt}")
        os._exit(1)


class PacedNote(Job, queue="tests"):
    """Like Note (appends its job id), after a short pause, so a batch takes a while to drain."""

    log_path: str
    pause: float = 0.02

    async def handle(self) -> None:
        await asyncio.sleep(self.pause)
        record(self.log_path, str(self.context.job_id))


class BlocksTheLoop(Job, queue="tests"):
    """An ``async def`` handler that blocks its worker's event loop (as a CPU-bound call or a
    stray ``time.sleep()`` does) on the attempts in ``blocking_attempts``."""

    log_path: str
    seconds: float
    blocking_attempts: list[int] = [1]  # noqa: RUF012 - pydantic copies field defaults

    async def handle(self) -> int:
        attempt = self.context.attempt
        record(self.log_path, f"start {self.context.job_id} {attempt}")
        if attempt in self.blocking_attempts:
            time.sleep(self.seconds)  # noqa: ASYNC251 - blocking the loop is the point
        record(self.log_path, f"end {self.context.job_id} {attempt}")
        return attempt
