"""Behind PgBouncer in transaction mode: poll only, or LISTEN on a separate direct DSN."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from pgqueue import Queue
from tests.factories import eventually, running, status_of
from tests.jobs import Note, SleepUntilCancelled

LISTENING = (
    "SELECT application_name FROM pg_stat_activity"
    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
)


async def test_poll_only_worker_runs_jobs_and_cancels_without_listen(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue, listen=False, poll_interval=0.1, heartbeat_interval=0.1):
        assert await db.fetch(LISTENING) == []
        done = await queue.enqueue(Note(log_path=str(tmp_path / "done.log")))
        await queue.wait_for(done, 10)
        sleeping = await queue.enqueue(SleepUntilCancelled(log_path=str(log)))
        await eventually(lambda: log.exists(), until=bool)
        assert await queue.cancel(sleeping)
        # No NOTIFY reaches it: its maintenance round finds the cancelled job and stops it.
        await eventually(lambda: log.read_text().splitlines(), until=lambda found: len(found) == 2)
    assert await status_of(db, sleeping) == "cancelled"
    assert log.read_text().splitlines() == ["start", "cancelled"]


async def test_listen_dsn_carries_only_the_listen(
    dsn: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    listen_dsn = dsn + ("&" if "?" in dsn else "?") + "application_name=pgqueue-listen"
    async with (
        Queue.connect(dsn, pgbouncer=True, listen_dsn=listen_dsn) as queue,
        running(queue, poll_interval=60),
    ):
        assert [row["application_name"] for row in await db.fetch(LISTENING)] == ["pgqueue-listen"]
        job_id = await queue.enqueue(Note(log_path=str(tmp_path / "runs.log")))
        await queue.wait_for(job_id, 5)  # woken through the direct connection's LISTEN
