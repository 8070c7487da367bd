"""Job classes the tests enqueue; importable by subprocess workers as ``--app tests.jobs``.

Handlers that must prove how often they ran append a line to the file named in their payload
(O_APPEND writes of one short line are atomic across processes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from pydantic import BaseModel, Field

from pgqueue import Job, PermanentError, Retry


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


class Permanent(Job, queue="tests", max_retries=5):
    """Gives up at once, whatever its retries."""

    async def handle(self) -> None:
        raise PermanentError("the card number is invalid")


class GivesUpOnValueError(Job, queue="tests", max_retries=5, give_up_on=[ValueError]):
    error: str  # "value" or "runtime"

    async def handle(self) -> None:
        raise ValueError("bad input") if self.error == "value" else RuntimeError("flaky")


class RetriesOnlyConnectionErrors(Job, queue="tests", max_retries=5, retry_on=[ConnectionError]):
    error: str  # "connection" or "key"

    async def handle(self) -> None:
        raise ConnectionError("reset") if self.error == "connection" else KeyError("missing")


class AlwaysFails(Job, queue="tests"):
    """No max_retries of its own: the enqueue, or else the worker, decides."""

    async def handle(self) -> None:
        raise RuntimeError(f"attempt {self.context.attempt} fails")


class Snoozer(Job, queue="tests"):
    """Asks to be run again later (Retry) ``snoozes`` times, logging each run."""

    snoozes: int
    log_path: str

    def handle(self) -> str:
        record(self.log_path, "run")
        if len(Path(self.log_path).read_text().splitlines()) <= self.snoozes:
            raise Retry(delay=0.05, reason="not ready yet")
        return "done"


class StrayCancel(Job, queue="tests", max_retries=0):
    """Its handler raises CancelledError itself, which is not a cancellation by the worker."""

    async def handle(self) -> None:
        raise asyncio.CancelledError("raised by the handler")


class TransactionalWrite(Job, queue="tests"):
    """Writes a row in the same transaction that completes the job; fails after it if asked."""

    order_id: int
    fail_in_transaction: bool = False

    async def handle(self) -> str:
        async with self.context.transaction() as connection:
            await connection.execute(
                "INSERT INTO receipts (order_id, attempt) VALUES ($1, $2)",
                self.order_id,
                self.context.attempt,
            )
            if self.fail_in_transaction and self.context.attempt == 1:
                raise RuntimeError("crashed before commit")
        return f"receipt for {self.order_id}"


class ReturnsAsGiven(Job, queue="tests", max_retries=1):
    """Declares an int but returns its payload's value as it is: "x" is not one, "5" is."""

    value: str | int

    def handle(self) -> int:
        return self.value  # type: ignore[return-value]


class TransactionalWrongResult(Job, queue="tests", max_retries=0):
    """Writes in its completing transaction, then returns what its annotation does not allow."""

    order_id: int

    async def handle(self) -> int:
        async with self.context.transaction() as connection:
            await connection.execute("INSERT INTO receipts VALUES ($1, 1)", self.order_id)
        return f"receipt for {self.order_id}"  # type: ignore[return-value]


class WaitingTransactionalWrite(Job, queue="tests", max_retries=0):
    """Writes in its completing transaction, then waits there until ``release_path`` exists."""

    order_id: int
    log_path: str
    release_path: str

    async def handle(self) -> None:
        async with self.context.transaction() as connection:
            await connection.execute("INSERT INTO receipts VALUES ($1, 1)", self.order_id)
            record(self.log_path, "written")
            while not os.path.exists(self.release_path):  # noqa: ASYNC110, ASYNC240
                await asyncio.sleep(0.01)


class RaisesBaseException(Job, queue="tests", max_retries=0):
    """Raises SystemExit or KeyboardInterrupt, async or from a thread."""

    kind: str  # "SystemExit" or "KeyboardInterrupt"
    in_thread: bool = False

    async def handle(self) -> None:
        if self.in_thread:
            await asyncio.to_thread(self.raise_it)
        self.raise_it()

    def raise_it(self) -> None:
        raise SystemExit(3) if self.kind == "SystemExit" else KeyboardInterrupt


class SleepUntilCancelled(Job, queue="tests"):
    """Sleeps for an hour; records when it starts and when the worker cancels it."""

    log_path: str

    async def handle(self) -> None:
        record(self.log_path, "start")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            record(self.log_path, "cancelled")
            raise


class ShowParent(Job, queue="tests", max_retries=0):
    """Returns the repr of its one parent's result (``context.parent_result()``), so a test can
    read from the database what type and value the handler was given."""

    async def handle(self) -> str:
        return repr(self.context.parent_result())


class ShowParents(Job, queue="tests", max_retries=0):
    """Returns ``[parent id, repr of its result]`` for each entry of ``context.parent_results``,
    in the order the handler saw them."""

    async def handle(self) -> list[tuple[int, str]]:
        return [(parent, repr(result)) for parent, result in self.context.parent_results.items()]


class SyncShowParent(Job, queue="tests", max_retries=0):
    """Like ShowParent, but a plain ``def`` handler (run in a thread)."""

    def handle(self) -> str:
        return repr(self.context.parent_result())


class QueueLimitNap(Job, queue="limited"):
    """Sleeps ``seconds``: the queue-limit tests count how many run at once and when each
    started (``started_at``), from the database."""

    seconds: float = 0.0

    async def handle(self) -> None:
        await asyncio.sleep(self.seconds)


class QueueLimitHold(Job, queue="limited"):
    """Logs ``start <id>``, then holds its slot until ``release_path`` exists."""

    log_path: str
    release_path: str

    async def handle(self) -> None:
        record(self.log_path, f"start {self.context.job_id}")
        while not os.path.exists(self.release_path):  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.01)


class QueueOrderProbe(Job, queue="ordered"):
    """Appends its label to ``log_path``: the lines are the order in which handle() ran."""

    label: str
    log_path: str

    async def handle(self) -> str:
        record(self.log_path, self.label)
        return self.label


class LogsAndFails(Job, queue="tests", max_retries=1):
    """Logs through the application's own logger (from a thread: a sync handler), then fails
    its first attempt."""

    word: str

    def handle(self) -> str:
        logging.getLogger("tests.app").info("handling %s", self.word)
        if self.context.attempt == 1:
            raise RuntimeError("first attempts fail")
        return self.word


class OpensSpan(Job, queue="tests"):
    """Opens a span of its own in handle(), through the global tracer provider."""

    async def handle(self) -> None:
        from opentelemetry import trace

        with trace.get_tracer("tests").start_as_current_span("inside handle"):
            pass


class SyncOpensSpan(Job, queue="tests"):
    """Like OpensSpan, but a plain ``def`` handler (run in a thread)."""

    def handle(self) -> None:
        from opentelemetry import trace

        with trace.get_tracer("tests").start_as_current_span("inside handle"):
            pass
