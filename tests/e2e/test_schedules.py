"""Schedules kept by ``pgqueue work`` processes: with five workers a per-second schedule gets
exactly one job per tick and no gap; ticks missed while no worker ran give only the latest.

The schedules are declared in tests/e2e/schedule_jobs.py, which only the subprocess workers
import (``--app``): importing it here would put them in this process's global registry.
"""

from __future__ import annotations

import signal
import subprocess
from datetime import datetime, timedelta

import asyncpg

from pgqueue.cron import MISSED_AFTER
from tests.e2e.conftest import WorkerProcesses
from tests.factories import eventually

APP = "tests.e2e.schedule_jobs"
EVERY_SECOND = "every-second"  # "* * * * * *"
EACH_MINUTE_AT = {0: "each-minute-at-00", 30: "each-minute-at-30"}  # "0 * * * * *", "30 ..."
SECOND = timedelta(seconds=1)


async def db_now(db: asyncpg.Connection) -> datetime:
    value: datetime = await db.fetchval("SELECT now()")
    return value


async def ticks_of(
    db: asyncpg.Connection, name: str, after: datetime | None = None
) -> list[datetime]:
    rows = await db.fetch(
        "SELECT schedule_tick FROM pgqueue.jobs WHERE schedule_name = $1"
        " AND ($2::timestamptz IS NULL OR schedule_tick > $2) ORDER BY schedule_tick",
        name,
        after,
    )
    return [row["schedule_tick"] for row in rows]


async def registered(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM pgqueue.workers"))


async def stop(workers: WorkerProcesses, *processes: subprocess.Popen[bytes]) -> list[int]:
    """SIGTERM them all, then their exit codes."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    return [await workers.wait(process) for process in processes]


async def test_five_workers_enqueue_each_tick_of_a_per_second_schedule_exactly_once(
    db: asyncpg.Connection, workers: WorkerProcesses
) -> None:
    started = [workers.start("--app", APP) for _ in range(5)]
    await eventually(lambda: registered(db), until=lambda n: n == 5, within=60)
    # Measure from when all five are registered and a scheduler is surely enqueueing.
    await eventually(lambda: ticks_of(db, EVERY_SECOND), until=bool, within=30)
    window_start = await db_now(db)

    measured = await eventually(
        lambda: ticks_of(db, EVERY_SECOND, after=window_start),
        until=lambda ticks: len(ticks) >= 11,
        within=30,
    )
    measured = measured[:11]  # ten seconds of ticks
    await eventually(
        lambda: db.fetchval(
            "SELECT count(*) FROM pgqueue.jobs WHERE schedule_name = $1"
            " AND schedule_tick = ANY($2::timestamptz[]) AND status = 'completed'",
            EVERY_SECOND,
            measured,
        ),
        until=lambda n: n == 11,
        within=30,
    )
    assert await stop(workers, *started) == [0] * 5

    duplicates = await db.fetch(
        "SELECT schedule_tick, count(*) FROM pgqueue.jobs WHERE schedule_name = $1"
        " GROUP BY schedule_tick HAVING count(*) > 1",
        EVERY_SECOND,
    )
    assert duplicates == []
    ticks = await ticks_of(db, EVERY_SECOND, after=window_start)
    assert ticks[:11] == measured
    first_whole_second = window_start.replace(microsecond=0) + SECOND
    assert ticks == [first_whole_second + SECOND * i for i in range(len(ticks))]  # no gap
    jobs = await db.fetch(
        "SELECT status::text AS status, attempts, run_at, schedule_tick FROM pgqueue.jobs"
        " WHERE schedule_name = $1 AND schedule_tick = ANY($2::timestamptz[])",
        EVERY_SECOND,
        measured,
    )
    assert {(job["status"], job["attempts"]) for job in jobs} == {("completed", 1)}
    assert all(job["run_at"] == job["schedule_tick"] for job in jobs)
    assert await registered(db) == 0


async def test_ticks_missed_while_no_worker_ran_give_only_the_latest_when_one_starts(
    db: asyncpg.Connection, workers: WorkerProcesses
) -> None:
    first = workers.start("--app", APP)
    await eventually(
        lambda: db.fetchval("SELECT count(*) FROM pgqueue.schedules"),
        until=lambda n: n == 3,
        within=60,
    )
    assert await stop(workers, first) == [0]

    # Ten minutes without a worker: no jobs, and the schedules last ticked ten minutes ago.
    await db.execute("DELETE FROM pgqueue.jobs")
    await db.execute("UPDATE pgqueue.schedules SET last_tick = now() - interval '10 minutes'")
    now = await db_now(db)
    # Of the two once-a-minute schedules, the one that ticked less than 30 s ago: its latest
    # missed tick is fixed, and its next one is 30 s or more away, time enough for a worker to
    # start and make its first pass.
    offset = 0 if now.second < 30 else 30
    latest = now.replace(second=offset, microsecond=0)
    each_minute = EACH_MINUTE_AT[offset]

    second = workers.start("--app", APP)
    [job] = await eventually(
        lambda: db.fetch(
            "SELECT id, status::text AS status, run_at, schedule_tick, created_at"
            " FROM pgqueue.jobs WHERE schedule_name = $1",
            each_minute,
        ),
        until=lambda jobs: len(jobs) == 1 and jobs[0]["status"] == "completed",
        within=25,
    )
    assert await stop(workers, second) == [0]

    assert await ticks_of(db, each_minute) == [latest]  # nine older missed ticks: no job
    assert job["run_at"] == job["schedule_tick"] == latest
    assert job["created_at"] > now  # enqueued by the worker that started after the outage
    # The per-second schedule also missed ten minutes: it resumed from its latest missed tick
    # at most (none of the older 600; those of the last MISSED_AFTER are only late), then went
    # on without a gap.
    per_second = await ticks_of(db, EVERY_SECOND)
    assert per_second
    assert per_second[0] >= now.replace(microsecond=0) - MISSED_AFTER - SECOND
    assert per_second == [per_second[0] + SECOND * i for i in range(len(per_second))]
    # The other once-a-minute schedule: its latest missed tick, then perhaps one more, on time.
    other = await ticks_of(db, EACH_MINUTE_AT[30 - offset])
    assert other[0] > now - timedelta(minutes=1)
    assert other in ([other[0]], [other[0], other[0] + timedelta(minutes=1)])
