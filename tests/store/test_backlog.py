"""Jobs that are not yet claimable (scheduled for later, pending in a paused queue, blocked on a
parent, or due but of a type the worker does not run) cost the worker's look-ahead and claims
nothing, and the counts of a queue's waiting jobs a bounded amount: each reads a few index
entries per queue and priority (and the due jobs it claims), however many such jobs wait.
Checked by the buffers they read, in custom plans and in the generic plans a long-lived session
may settle on, and by the scans they make of pgqueue.jobs (#14)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from pgqueue import Queue
from pgqueue.records import EXACT_COUNT
from pgqueue.sql import queries
from tests.jobs import Echo

ECHO = Echo.job_options.name
BLOCKED = 20_000  # due, but waiting on their parent
BACKLOG = 60_000  # per kind: reading it would cost hundreds of buffers, a claim under 100
QUEUES = ["tests", "paused"]
# The scans of pgqueue.jobs in this transaction so far (sequential first).
SCANS = (
    "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables"
    " WHERE schemaname = 'pgqueue' AND relname = 'jobs'"
)


async def undone(db: asyncpg.Connection, sql: str, args: tuple[object, ...]) -> list[Any]:
    """The statement's rows, in a transaction rolled back: a claim leaves the jobs pending."""
    transaction = db.transaction()
    await transaction.start()
    try:
        return await db.fetch(sql, *args)
    finally:
        await transaction.rollback()


async def run_explained(
    db: asyncpg.Connection, name: str, *args: object, generic: bool
) -> tuple[list[Any], dict[str, Any]]:
    """The named query's rows and its executed plan, as the worker runs it, each undone. The
    plans that matter are those of the statements inside the pgqueue function it calls, which
    the session caches as it would a prepared statement's: generic=True makes them the generic
    plans that a long-lived worker may settle on. (claim_jobs and next_run_at always use their
    generic plans.)"""
    sql = queries[name].sql
    mode = "force_generic_plan" if generic else "force_custom_plan"
    await db.execute(f"SET plan_cache_mode = {mode}")
    try:
        await undone(db, sql, args)  # the first call plans the function's statements
        explained = await undone(db, f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", args)
        rows = await undone(db, sql, args)
    finally:
        await db.execute("RESET plan_cache_mode")
    return rows, json.loads(explained[0][0])[0]["Plan"]


def buffers(plan: dict[str, Any]) -> int:
    """The buffers a plan read, those of the functions its nodes call included."""
    return int(plan["Shared Hit Blocks"] + plan["Shared Read Blocks"])


@pytest.fixture
async def backlog(queue: Queue, db: asyncpg.Connection) -> asyncpg.Connection:
    """BACKLOG jobs scheduled a day ahead in 'tests', as many due ones in the paused queue
    'paused', BLOCKED due ones in 'tests' waiting on a parent, and that parent: one Echo due in
    an hour in 'tests'; analyzed."""
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
    parent = await queue.enqueue(Echo(text="next"), delay=timedelta(hours=1))
    await db.execute(
        "INSERT INTO pgqueue.jobs (queue, job_type, blocked, depends_on)"
        " SELECT 'tests', $1, true, ARRAY[$2::bigint] FROM generate_series(1, $3)",
        ECHO,
        parent,
        BLOCKED,
    )
    await db.execute("ANALYZE pgqueue.jobs")
    return db


@pytest.fixture(params=["backlog", "foreign"])
async def backlogs(
    request: pytest.FixtureRequest, backlog: asyncpg.Connection
) -> asyncpg.Connection:
    """The backlog; then again with, in 'tests', as many jobs of a type no worker here runs, due
    a minute ago, so ahead of every Echo in claim order (analyzed)."""
    if request.param == "backlog":
        return backlog
    await backlog.execute(
        "INSERT INTO pgqueue.jobs (queue, job_type, run_at)"
        " SELECT 'tests', 'elsewhere.Other', now() - interval '1 minute' + n * interval '1 us'"
        " FROM generate_series(1, $1) AS n",
        BACKLOG,
    )
    await backlog.execute("ANALYZE pgqueue.jobs")
    return backlog


GENERIC = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])


@GENERIC
async def test_the_look_ahead_reads_a_few_buffers_however_large_the_backlog(
    backlogs: asyncpg.Connection, generic: bool
) -> None:
    rows, plan = await run_explained(
        backlogs, "seconds_until_next_job", QUEUES, [ECHO], generic=generic
    )

    assert 3500 < rows[0][0] <= 3600  # the job due in an hour, not the paused queue's due ones
    assert buffers(plan) < 50, f"{buffers(plan)} buffers for {2 * BACKLOG + BLOCKED} waiting jobs"


async def test_the_look_ahead_never_scans_the_jobs_table(
    backlog: asyncpg.Connection, queue: Queue
) -> None:
    async with backlog.transaction():  # the counts of this transaction alone, up to date
        before = await backlog.fetchrow(SCANS)
        seconds = await queue.store.seconds_until_next_job(
            queues=QUEUES, job_types=[ECHO], connection=backlog
        )
        after = await backlog.fetchrow(SCANS)

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


@GENERIC
async def test_a_claim_reads_the_due_jobs_only_however_large_the_backlog(
    backlogs: asyncpg.Connection, queue: Queue, generic: bool
) -> None:
    urgent = [await queue.enqueue(Echo(text=f"urgent {n}"), priority=3) for n in range(2)]
    due = [await queue.enqueue(Echo(text=f"due {n}")) for n in range(5)]
    worker_id = uuid4()

    # Asking for more than are due: the claim must stop at the first job not due yet.
    rows, plan = await run_explained(
        backlogs, "claim_jobs", QUEUES, [ECHO], worker_id, 10, generic=generic
    )

    assert [row["id"] for row in rows[:2]] == urgent  # the higher priority first
    assert sorted(row["id"] for row in rows[2:]) == due
    assert buffers(plan) < 200, f"{buffers(plan)} buffers to claim {len(rows)} jobs"


async def test_a_claim_never_scans_the_jobs_table(
    backlog: asyncpg.Connection, queue: Queue
) -> None:
    job = await queue.enqueue(Echo(text="due"))
    async with backlog.transaction():  # as above
        before = await backlog.fetchval(SCANS)
        claimed = await backlog.fetch(queries["claim_jobs"].sql, QUEUES, [ECHO], uuid4(), 10)
        after = await backlog.fetchval(SCANS)

    assert [row["id"] for row in claimed] == [job]
    assert after == before
    status = await backlog.fetchval("SELECT status::text FROM pgqueue.jobs WHERE id = $1", job)
    assert status == "running"


async def test_the_counts_of_waiting_jobs_are_exact_up_to_a_bound_and_estimated_above(
    backlog: asyncpg.Connection, queue: Queue
) -> None:
    await queue.enqueue(Echo(text="due"))
    counts = "SELECT pending, scheduled, blocked, estimated FROM pgqueue.waiting_jobs($1, $2)"

    exact = await backlog.fetchrow(counts, "tests", 100_000)
    bounded = await backlog.fetchrow(counts, "tests", 1000)
    paused = await backlog.fetchrow(counts, "paused", 1000)

    assert tuple(exact) == (1, BACKLOG + 1, BLOCKED, False)
    pending, scheduled, blocked, estimated = bounded
    assert (pending, estimated) == (1, True)
    assert 0.8 * BACKLOG < scheduled < 1.2 * BACKLOG  # the statistics, less the exact pending
    assert 0.8 * BLOCKED < blocked < 1.2 * BLOCKED
    pending, scheduled, blocked, estimated = paused
    assert (scheduled, blocked, estimated) == (0, 0, True)
    assert 0.8 * BACKLOG < pending < 1.2 * BACKLOG


async def test_the_queue_summary_reads_a_bounded_number_of_buffers(
    backlog: asyncpg.Connection, queue: Queue
) -> None:
    """A page load or a scrape: exact counts stop at EXACT_COUNT index entries (a few hundred
    buffers), however many jobs wait."""
    rows, plan = await run_explained(backlog, "queue_summary", generic=False)
    depths, depth_plan = await run_explained(backlog, "queue_depths", QUEUES, generic=True)

    by_queue = {row["queue"]: row for row in rows}
    assert by_queue["tests"]["scheduled"] > EXACT_COUNT
    assert by_queue["tests"]["blocked"] > EXACT_COUNT
    assert by_queue["paused"]["pending"] > EXACT_COUNT
    assert by_queue["paused"]["paused"]
    assert [(row["queue"], row["ready"] > EXACT_COUNT) for row in depths] == [
        ("paused", True),
        ("tests", False),
    ]
    assert buffers(plan) < 1000, f"{buffers(plan)} buffers for {2 * BACKLOG + BLOCKED} waiting jobs"
    assert buffers(depth_plan) < 1000, f"{buffers(depth_plan)} buffers"
