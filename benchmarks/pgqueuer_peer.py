"""PgQueuer 1.6 in the fastest configuration its docs recommend (research/performance.md).

- Schema: ``Queries.install()`` (what ``pgq install`` runs; durability ``durable``, the default),
  then ``optimize_autovacuum()`` (``pgq autovac``, on the tuning guide's checklist).
- Enqueue: ``Queries`` over ``AsyncpgPoolDriver`` (asyncpg pool of 1-4, "a pool for producers");
  ``enqueue("noop", None)`` per job; a batch is one ``enqueue([...], [...], [...])`` call, which
  PgQueuer sends as one INSERT ... unnest statement.
- Worker (``python -m benchmarks.worker pgqueuer DSN``): ``QueueManager`` on one dedicated asyncpg
  connection, ``run(batch_size=100, dequeue_timeout=30 s)``, unlimited ``max_concurrent_tasks``,
  on uvloop as ``pgq run`` does. SIGTERM sets the manager's shutdown event.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
from pgqueuer import Job, QueueManager
from pgqueuer.db import AsyncpgDriver, AsyncpgPoolDriver
from pgqueuer.queries import Queries

from benchmarks.peer import StartLog, event_loop_name, module_command, run_event_loop

ENTRYPOINT = "noop"
BATCH_SIZE = 100  # jobs a dequeue claims; the research's sweep: 100 is on the plateau
DEQUEUE_TIMEOUT = timedelta(seconds=30)
PRODUCER_POOL = (1, 4)  # asyncpg pool min, max

# PgQueuer deletes a finished job from its queue table and logs it in ``pgqueuer_log``.
COUNT_UNFINISHED = "SELECT count(*) FROM pgqueuer"
COUNT_COMPLETED = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"


class PgqueuerPeer:
    uses_uvloop = True

    def configuration(self) -> dict[str, Any]:
        return {
            "summary": "QueueManager on a dedicated asyncpg connection, batch_size=100, uvloop",
            "install": "Queries.install() (durability=durable) + optimize_autovacuum()",
            "enqueue": "Queries(AsyncpgPoolDriver(asyncpg pool 1-4)).enqueue('noop', None)",
            "batch_enqueue": "Queries.enqueue([entrypoints], [payloads], [priorities]), 1000/call",
            "worker": (
                "QueueManager(Queries(AsyncpgDriver(one asyncpg connection))).run("
                "batch_size=100, dequeue_timeout=30s, max_concurrent_tasks=None)"
            ),
            "wake_up": "PgQueuer's LISTEN/NOTIFY (its own trigger)",
            "event_loop": f"{event_loop_name(uvloop=True)} (client and workers, as pgq run)",
        }

    async def install(self, dsn: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            queries = Queries(AsyncpgDriver(connection))
            await queries.install()
            await queries.optimize_autovacuum()
        finally:
            await connection.close()

    @contextlib.asynccontextmanager
    async def producer(self, dsn: str) -> AsyncIterator[PgqueuerProducer]:
        minimum, maximum = PRODUCER_POOL
        async with asyncpg.create_pool(dsn, min_size=minimum, max_size=maximum) as pool:
            yield PgqueuerProducer(pool)

    def worker_command(self, dsn: str) -> list[str]:
        return module_command("benchmarks.worker", "pgqueuer", dsn)


class PgqueuerProducer:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queries = Queries(AsyncpgPoolDriver(pool))

    async def enqueue(self, number: int) -> str:
        (job_id,) = await self._queries.enqueue(ENTRYPOINT, None)
        return str(job_id)

    async def enqueue_batch(self, numbers: range) -> None:
        count = len(numbers)
        await self._queries.enqueue([ENTRYPOINT] * count, [None] * count, [0] * count)

    async def count_unfinished(self) -> int:
        return int(await self._pool.fetchval(COUNT_UNFINISHED))

    async def count_completed(self) -> int:
        return int(await self._pool.fetchval(COUNT_COMPLETED))


async def work(dsn: str) -> None:
    """Run the ``noop`` entrypoint until SIGTERM (or SIGINT)."""
    starts = StartLog()
    connection = await asyncpg.connect(dsn)
    try:
        manager = QueueManager(Queries(AsyncpgDriver(connection)))

        @manager.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            starts.note(job.id)

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, manager.shutdown.set)
        await manager.run(dequeue_timeout=DEQUEUE_TIMEOUT, batch_size=BATCH_SIZE)
    finally:
        await connection.close()


def main(dsn: str) -> None:
    run_event_loop(work(dsn), uvloop=True)
