"""The raw baseline: what plain asyncpg does with a minimal queue table, the limit every queue
library competes against (research/performance.md, "raw (limit)").

- Enqueue: one connection; a prepared ``INSERT ... VALUES ($1)`` per job; batches by ``COPY``
  (``copy_records_to_table``, 1,000 rows a call).
- Worker (``python -m benchmarks.worker raw DSN``): one connection; claim 100 jobs with
  ``FOR UPDATE SKIP LOCKED``, await a no-op handler per job, mark the 100 done in one UPDATE.
  Idle, it waits for the NOTIFY of a statement-level insert trigger, polling every second as a
  fallback. uvloop on both sides, as in the research.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from benchmarks.peer import StartLog, event_loop_name, module_command, run_event_loop

CHANNEL = "raw_jobs"
POLL_FALLBACK = 1.0  # seconds an idle worker waits for a NOTIFY before it looks anyway

SCHEMA = """
CREATE TABLE raw_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload text NOT NULL,
    status smallint NOT NULL DEFAULT 0  -- 0 pending, 1 running, 2 done
);
-- The claim reads pending rows in id order; done rows drop out of this index.
CREATE INDEX raw_jobs_pending_idx ON raw_jobs (id) WHERE status = 0;
CREATE FUNCTION raw_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('raw_jobs', '');
    RETURN NULL;
END $$;
-- One NOTIFY per INSERT or COPY statement, not per row.
CREATE TRIGGER raw_jobs_inserted AFTER INSERT ON raw_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION raw_jobs_notify();
"""
INSERT = "INSERT INTO raw_jobs (payload) VALUES ($1) RETURNING id"
# SKIP LOCKED: another worker's claim skips the rows this one holds instead of waiting.
CLAIM = """
UPDATE raw_jobs SET status = 1
WHERE id IN (
    SELECT id FROM raw_jobs WHERE status = 0 ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 100
)
RETURNING id
"""
FINISH = "UPDATE raw_jobs SET status = 2 WHERE id = ANY($1::bigint[])"
COUNT_UNFINISHED = "SELECT count(*) FROM raw_jobs WHERE status <> 2"
COUNT_COMPLETED = "SELECT count(*) FROM raw_jobs WHERE status = 2"


class RawPeer:
    uses_uvloop = True

    def configuration(self) -> dict[str, Any]:
        return {
            "summary": "asyncpg only: prepared INSERT, COPY batches; claim 100 with SKIP LOCKED",
            "enqueue": "one asyncpg connection; prepared INSERT ... VALUES ($1) RETURNING id",
            "batch_enqueue": "copy_records_to_table, 1000 rows per call (one COPY)",
            "worker": (
                "one asyncpg connection per process; claim 100 "
                "(UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 100) "
                "RETURNING id), await a no-op handler per job, one UPDATE ... = ANY($1)"
            ),
            "wake_up": "LISTEN raw_jobs, statement-level insert trigger NOTIFY, 1 s poll",
            "index": "raw_jobs (id) WHERE status = 0",
            "event_loop": f"{event_loop_name(uvloop=True)} (client and workers, as researched)",
        }

    async def install(self, dsn: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(SCHEMA)
        finally:
            await connection.close()

    @contextlib.asynccontextmanager
    async def producer(self, dsn: str) -> AsyncIterator[RawProducer]:
        connection = await asyncpg.connect(dsn)
        try:
            yield RawProducer(connection, await connection.prepare(INSERT))
        finally:
            await connection.close()

    def worker_command(self, dsn: str) -> list[str]:
        return module_command("benchmarks.worker", "raw", dsn)


class RawProducer:
    def __init__(
        self, connection: asyncpg.Connection, insert: asyncpg.prepared_stmt.PreparedStatement
    ) -> None:
        self._connection = connection
        self._insert = insert

    async def enqueue(self, number: int) -> str:
        return str(await self._insert.fetchval(str(number)))

    async def enqueue_batch(self, numbers: range) -> None:
        records = [(str(number),) for number in numbers]
        await self._connection.copy_records_to_table(
            "raw_jobs", records=records, columns=["payload"]
        )

    async def count_unfinished(self) -> int:
        return int(await self._connection.fetchval(COUNT_UNFINISHED))

    async def count_completed(self) -> int:
        return int(await self._connection.fetchval(COUNT_COMPLETED))


async def work(dsn: str) -> None:
    """Claim, run and finish jobs until SIGTERM (or SIGINT); the batch in hand is finished."""
    starts = StartLog()
    wake = asyncio.Event()
    stopping = False

    def stop() -> None:
        nonlocal stopping
        stopping = True
        wake.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.add_listener(CHANNEL, lambda *_: wake.set())
        claim = await connection.prepare(CLAIM)
        while not stopping:
            wake.clear()  # before the claim: a NOTIFY during it means look again
            ids = [row[0] for row in await claim.fetch()]
            if ids:
                for job_id in ids:
                    await handle(starts, job_id)
                await connection.execute(FINISH, ids)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_FALLBACK)
    finally:
        await connection.close()


async def handle(starts: StartLog, job_id: int) -> None:
    starts.note(job_id)


def main(dsn: str) -> None:
    run_event_loop(work(dsn), uvloop=True)
