"""Job classes the tests enqueue; importable by subprocess workers as ``--app tests.jobs``.

Handlers that must prove how often they ran append a line to the file named in their payload
(O_APPEND writes of one short line are atomic across processes).
"""

from __future__ import annotations

import asyncio
import os
import time

from pydantic import BaseModel, Field

from pgqueue import Job


def record(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


class Echo(Job, queue="tests"):
    """Returns its payload, so a test can compare what went in with what the handler saw."""

    text: str
    numbers: list[int] = Field(default_factory=list)

    async def handle(self) -> dict[str, object]:
        return {"text": self.text, "numbers": self.numbers, "attempt": self.context.attempt}


class Note(Job, queue="tests"):
    """Appends its job id to ``log_path``: the number of lines is the number of runs."""

    log_path: str

    async def handle(self) -> None:
        record(self.log_path, str(self.context.job_id))


class SyncNote(Job, queue="tests"):
    """Like Note, but a plain ``def`` handler (run in a thread)."""

    log_path: str

    def handle(self) -> str:
        record(self.log_path, str(self.context.job_id))
        return "thread"


class Sleep(Job, queue="tests"):
    """Sleeps, recording its start and (if it gets there) its end."""

    seconds: float
    log_path: str

    async def handle(self) -> None:
        record(self.log_path, f"start {self.context.job_id}")
        await asyncio.sleep(self.seconds)
        record(self.log_path, f"end {self.context.job_id}")


class Flaky(Job, queue="tests", max_retries=3):
    """Fails until attempt ``succeed_on``, then succeeds."""

    succeed_on: int

    async def handle(self) -> int:
        if self.context.attempt < self.succeed_on:
            raise RuntimeError(f"attempt {self.context.attempt} fails on purpose")
        return self.context.attempt


class Summary(BaseModel):
    total: int
    label: str


class Summarize(Job, queue="tests", name="summarize"):
    """A job registered under an explicit name, returning a pydantic model."""

    values: list[int]

    async def handle(self) -> Summary:
        return Summary(total=sum(self.values), label=f"{len(self.values)} values")


class Stuck(Job, queue="tests", timeout=0.2):
    """Never finishes on its own: its class timeout cancels it."""

    async def handle(self) -> None:
        await asyncio.sleep(3600)


class BlockingStuck(Job, queue="tests", timeout=0.2, max_retries=0):
    """A sync handler that overruns its timeout (the thread cannot be killed, the slot frees)."""

    def handle(self) -> None:
        time.sleep(1)


class BlockingSleep(Job, queue="tests"):
    """A sync handler that blocks its thread; no timeout."""

    seconds: float
    log_path: str

    def handle(self) -> None:
        record(self.log_path, f"start {self.context.job_id}")
        time.sleep(self.seconds)
