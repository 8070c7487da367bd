"""Procrastinate 3.10 in the configuration the research note chose (research/performance.md).

- Schema: ``app.schema_manager.apply_schema_async()``.
- Enqueue: ``App(PsycopgConnector(pool 1-4))``; ``noop.defer_async(i=...)`` per job; a batch is one
  ``noop.batch_defer_async(*kwargs)`` call of 1,000 jobs.
- Worker (``python -m benchmarks.worker procrastinate DSN``): ``run_worker_async(concurrency=30,
  listen_notify=True)`` over a pool of 10, ``delete_jobs="never"`` (the default), on asyncio's
  own loop as its CLI runs (``asyncio.run``), logging left unconfigured. Its own signal handlers
  stop it on SIGTERM.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from procrastinate import App, PsycopgConnector
from procrastinate.tasks import Task
from procrastinate.types import JSONDict

from benchmarks.peer import StartLog, module_command, run_event_loop

CONCURRENCY = 30  # the research's sweep: 10/30/100 -> 352/472/409 jobs/s; the docs' example
WORKER_POOL = 10  # psycopg pool max_size of a worker (pool sweep 4/10/30 at c=30)
PRODUCER_POOL = (1, 4)  # psycopg pool min_size, max_size of the enqueuing client

COUNT_UNFINISHED = "SELECT count(*) AS n FROM procrastinate_jobs WHERE status <> 'succeeded'"
COUNT_COMPLETED = "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'succeeded'"

_starts: StartLog | None = None  # set in worker processes only


def build_app(dsn: str, *, min_size: int, max_size: int) -> tuple[App, Task[Any, Any, Any]]:
    """An app over a psycopg pool, and its one task."""
    app = App(connector=PsycopgConnector(conninfo=dsn, min_size=min_size, max_size=max_size))

    @app.task(name="noop")
    async def noop(i: int) -> None:
        if _starts is not None:
            _starts.note(i)

    return app, noop


class ProcrastinatePeer:
    uses_uvloop = False

    def configuration(self) -> dict[str, Any]:
        return {
            "summary": "run_worker_async(concurrency=30, listen_notify=True), pool 10, asyncio",
            "install": "app.schema_manager.apply_schema_async()",
            "enqueue": "App(PsycopgConnector(min_size=1, max_size=4)); noop.defer_async(i=n)",
            "batch_enqueue": "noop.batch_defer_async(*[{'i': n}, ...]), 1000 per call",
            "worker": (
                "App(PsycopgConnector(min_size=4, max_size=10)).run_worker_async("
                "concurrency=30, listen_notify=True, delete_jobs='never')"
            ),
            "wake_up": "Procrastinate's LISTEN/NOTIFY (listen_notify=True), 5 s polling fallback",
            "event_loop": "asyncio (client and workers; its CLI uses asyncio.run)",
        }

    async def install(self, dsn: str) -> None:
        app, _ = build_app(dsn, min_size=1, max_size=1)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

    @contextlib.asynccontextmanager
    async def producer(self, dsn: str) -> AsyncIterator[ProcrastinateProducer]:
        minimum, maximum = PRODUCER_POOL
        app, task = build_app(dsn, min_size=minimum, max_size=maximum)
        async with app.open_async():
            yield ProcrastinateProducer(app, task)

    def worker_command(self, dsn: str) -> list[str]:
        return module_command("benchmarks.worker", "procrastinate", dsn)


class ProcrastinateProducer:
    def __init__(self, app: App, task: Task[Any, Any, Any]) -> None:
        self._app = app
        self._task = task

    async def enqueue(self, number: int) -> str:
        await self._task.defer_async(i=number)
        return str(number)  # the handler logs its argument

    async def enqueue_batch(self, numbers: range) -> None:
        arguments: list[JSONDict] = [{"i": number} for number in numbers]
        await self._task.batch_defer_async(*arguments)

    async def count_unfinished(self) -> int:
        return int((await self._app.connector.execute_query_one_async(COUNT_UNFINISHED))["n"])

    async def count_completed(self) -> int:
        return int((await self._app.connector.execute_query_one_async(COUNT_COMPLETED))["n"])


async def work(dsn: str) -> None:
    """Run the worker until SIGTERM (Procrastinate's own signal handlers)."""
    global _starts
    _starts = StartLog()
    app, _ = build_app(dsn, min_size=4, max_size=WORKER_POOL)  # 4: psycopg_pool's default
    async with app.open_async():
        await app.run_worker_async(concurrency=CONCURRENCY, listen_notify=True, delete_jobs="never")


def main(dsn: str) -> None:
    run_event_loop(work(dsn), uvloop=False)
