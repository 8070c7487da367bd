"""Pruning finished jobs: per-status retention, small batches, one pruner at a time."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
import pytest
from click.testing import CliRunner

from pgqueue import JobStatus, Queue, Retention
from pgqueue.cli import main
from pgqueue.sql import queries
from tests.factories import eventually, running
from tests.jobs import Echo


async def seed(
    queue: Queue, db: asyncpg.Connection, status: str, finished_ago: str, n: int = 1
) -> list[int]:
    ids = await queue.enqueue_batch([Echo(text=status) for _ in range(n)])
    await db.execute(
        "UPDATE pgqueue.jobs SET status = $1::text::pgqueue.job_status,"
        " finished_at = now() - $2::text::interval WHERE id = ANY($3)",
        status,
        finished_ago,
        ids,
    )
    return ids


async def remaining(db: asyncpg.Connection) -> dict[str, int]:
    rows = await db.fetch("SELECT status::text, count(*) FROM pgqueue.jobs GROUP BY 1")
    return {row["status"]: row["count"] for row in rows}


async def test_each_status_is_kept_for_its_own_period(queue: Queue, db: asyncpg.Connection) -> None:
    await seed(queue, db, "completed", "2 days")
    await seed(queue, db, "completed", "1 hour")
    await seed(queue, db, "failed", "3 days")  # failed: kept 7 days
    await seed(queue, db, "failed", "8 days")
    await seed(queue, db, "cancelled", "8 days")
    await queue.enqueue(Echo(text="pending"))

    deleted = await queue.prune()

    assert deleted == {JobStatus.COMPLETED: 1, JobStatus.FAILED: 1, JobStatus.CANCELLED: 1}
    assert await remaining(db) == {"completed": 1, "failed": 1, "pending": 1}


async def test_zero_keeps_a_status_forever(queue: Queue, db: asyncpg.Connection) -> None:
    await seed(queue, db, "failed", "365 days")
    await seed(queue, db, "completed", "2 days")

    deleted = await queue.prune(Retention(failed=timedelta(0)))

    assert JobStatus.FAILED not in deleted
    assert await remaining(db) == {"failed": 1}


async def test_large_backlogs_go_in_batches_until_done_or_the_batch_limit(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await seed(queue, db, "completed", "2 days", n=25)

    assert (await queue.prune(batch_size=10, max_batches=2))[JobStatus.COMPLETED] == 20
    assert (await queue.prune(batch_size=10))[JobStatus.COMPLETED] == 5
    assert await remaining(db) == {}


async def test_only_one_pruner_at_a_time(queue: Queue, db: asyncpg.Connection, dsn: str) -> None:
    await seed(queue, db, "completed", "2 days", n=3)
    other = await asyncpg.connect(dsn)
    try:
        async with other.transaction():  # another worker is pruning
            await other.execute("SELECT pg_advisory_xact_lock(hashtext('pgqueue.prune'))")
            assert (await queue.prune())[JobStatus.COMPLETED] == 0
        assert (await queue.prune())[JobStatus.COMPLETED] == 3
    finally:
        await other.close()


async def test_workers_prune_as_part_of_their_maintenance(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await seed(queue, db, "completed", "2 days", n=3)
    await seed(queue, db, "completed", "1 minute")
    async with running(queue, heartbeat_interval=0.05, heartbeat_timeout=1):
        await eventually(lambda: remaining(db), until=lambda left: left == {"completed": 1})


async def test_negative_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="retention of failed jobs must not be negative"):
        Retention(failed=timedelta(seconds=-1))


async def test_a_retention_past_a_century_is_refused_before_now_minus_it_overflows() -> None:
    with pytest.raises(ValueError, match="retention of completed jobs must be at most a century"):
        Retention(completed=timedelta(days=999_999_999))


async def test_prune_command_reports_what_it_deleted(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    await seed(queue, db, "completed", "3 hours", n=2)
    await seed(queue, db, "failed", "3 hours")
    args = ["prune", "--keep-completed", "2h", "--keep-failed", "0", "--json", "--dsn", dsn]

    result = await asyncio.to_thread(CliRunner().invoke, main, args)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"completed": 2, "cancelled": 0}
    assert await remaining(db) == {"failed": 1}


async def test_pruning_one_status_reads_none_of_the_rows_another_status_keeps(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO pgqueue.jobs (job_type, status, finished_at)"
        " SELECT 'x', 'failed', now() - interval '3 days' FROM generate_series(1, 5000)"
    )
    await db.execute("ANALYZE pgqueue.jobs")
    plan = await db.fetchval(
        f"EXPLAIN (FORMAT JSON) {queries['prune_jobs'].sql}", "completed", timedelta(days=1), 1000
    )
    assert "jobs_finished_idx" in plan  # status leads the index: the kept failed rows are skipped
    assert '"Seq Scan"' not in plan
