"""Jobs that are not yet claimable (scheduled for later, or pending in a paused queue) cost the
worker's look-ahead nothing: it reads a few index entries per queue and priority, however many
such jobs wait. Checked by the buffers it reads, in a custom plan and in the generic plan a
prepared statement may settle on, and by the scans it makes of pgqueue.jobs (#14)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from pgqueue import Queue
from pgqueue.sql import queries
from tests.jobs import Echo

ECHO = Echo.job_options.name
BACKLOG = 20_000  # per kind: enough that reading it would cost thousands of buffers
QUEUES = ["tests", "paused"]


async def run_explained(db: asyncpg.Connection, generic: bool) -> tuple[float, dict[str, Any]]:
    """The look-ahead's answer and its executed plan, for the worker's queues and types."""
    sql = queries["seconds_until_next_job"].sql
    explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
    await db.fetchval(sql, QUEUES, [ECHO])  # the first call plans the function's statements
    if not generic:
        plan = await db.fetchval(f"{explain} {sql}", QUEUES, [ECHO])
        answer = await db.fetchval(sql, QUEUES, [ECHO])
        return answer, json.loads(plan)[0]["Plan"]
    await db.execute(f"PREPARE look_ahead (text[], text[]) AS {sql}")
    await db.execute("SET plan_cache_mode = force_generic_plan")
    try:
        literals = "'{tests,paused}', ARRAY[$$" + ECHO + "$$]"
        plan = await db.fetchval(f"{explain} EXECUTE look_ahead({literals})")
        answer = await db.fetchval(f"EXECUTE look_ahead({literals})")
    finally:
        await db.execute("DEALLOCATE look_ahead; RESET plan_cache_mode")
    return answer, json.loads(plan)[0]["Plan"]


@pytest.fixture
async def backlog(queue: Queue, db: asyncpg.Connection) -> asyncpg.Connection:
    """BACKLOG jobs scheduled a day ahead in 'tests', as many due ones in the paused queue
    'paused', and one Echo due in an hour in 'tests'; analyzed."""
    await db.execute(
        "INSERT INTO pgqueue.jobs (queue, job_type, run_at)"
        " SELECT 'tests', $1, now() + interval '1 day' + n * interval '1 ms'"
        " FROM generate_series(1, $2) AS n",
        ECHO,
        BACKLOG,
    )
    await queue.pause_queue("paused")
    await db.execute(
        "INSERT INTO pgqueue.jobs (queue, job_type)"
        " SELECT 'paused', $1 FROM generate_series(1, $2)",
        ECHO,
        BACKLOG,
    )
    await queue.enqueue(Echo(text="next"), delay=timedelta(hours=1))
    await db.execute("ANALYZE pgqueue.jobs")
    return db


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_the_look_ahead_reads_a_few_buffers_however_large_the_backlog(
    backlog: asyncpg.Connection, generic: bool
) -> None:
    answer, plan = await run_explained(backlog, generic)

    assert 3500 < answer <= 3600  # the job due in an hour, not the paused queue's due ones
    # A node's buffers include those of the functions it calls (pgqueue.next_run_at).
    read = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
    assert read < 50, f"{read} buffers for {2 * BACKLOG} waiting jobs"


async def test_the_look_ahead_never_scans_the_jobs_table(
    backlog: asyncpg.Connection, queue: Queue
) -> None:
    scans = (
        "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'pgqueue' AND relname = 'jobs'"
    )
    async with backlog.transaction():  # the counts of this transaction alone, up to date
        before = await backlog.fetchrow(scans)
        seconds = await queue.store.seconds_until_next_job(
            queues=QUEUES, job_types=[ECHO], connection=backlog
        )
        after = await backlog.fetchrow(scans)

    assert seconds is not None
    assert 3500 < seconds <= 3600
    assert before is not None
    assert after is not None
    assert after["seq_scan"] == before["seq_scan"]
    assert after["idx_scan"] > before["idx_scan"]


async def test_the_look_ahead_takes_the_earliest_over_priorities_and_steps_over_other_types(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue(Echo(text="urgent, later"), priority=5, delay=timedelta(hours=2))
    await queue.enqueue(Echo(text="sooner"), priority=-3, delay=timedelta(minutes=10))
    await queue.enqueue(Echo(text="later still"), delay=timedelta(hours=3))
    for _ in range(3):  # due, but of a type this worker does not run
        await queue.enqueue_by_name("elsewhere.Other", {}, queue="tests")

    seconds = await queue.store.seconds_until_next_job(queues=QUEUES, job_types=[ECHO])

    assert seconds is not None
    assert 590 < seconds <= 600
