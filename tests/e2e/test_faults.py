"""Fault injection on real ``pgqueue work`` processes: SIGKILLed workers, a job that kills its
worker every time, a PostgreSQL restart mid-run (on a throwaway cluster), a claim whose reply was
lost with its connection, a killed LISTEN connection, SIGTERM with jobs in flight. Judged by the
rows in the database and by what the handlers recorded (one line per run)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import pytest

from pgqueue import Queue
from pgqueue.migrate import upgrade
from tests.e2e.cluster import Cluster, throwaway_cluster
from tests.e2e.conftest import WorkerProcesses
from tests.e2e.fault_jobs import APPS, HangsOnFirstAttempt, KillsItsWorker, PacedNote
from tests.factories import count, eventually, lines, status_of
from tests.jobs import Note, Sleep

# Short enough that a dead worker's jobs come back within seconds.
FAST_HEARTBEAT = ("--heartbeat-interval", "0.5", "--heartbeat-timeout", "2")

T = TypeVar("T")


def alive(
    workers: WorkerProcesses, process: subprocess.Popen[bytes], until: Callable[[T], bool]
) -> Callable[[T], bool]:
    """``until`` for ``eventually`` that fails at once, with the worker's log, if it exits."""

    def check(value: T) -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"worker exited with {process.returncode}:\n{workers.log_of(process)}"
            )
        return until(value)

    return check


async def exit_code(
    workers: WorkerProcesses, process: subprocess.Popen[bytes], within: float = 30
) -> int:
    """The worker's exit status, waiting up to ``within`` s; fails with its log if it hangs."""
    try:
        return await workers.wait(process, within)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"worker still running {within}s later:\n{workers.log_of(process)}"
        ) from None


async def job_row(db: asyncpg.Connection, job_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT status::text AS status, attempts, worker_id, last_error, "
        "errors::text AS errors FROM pgqueue.jobs WHERE id = $1",
        job_id,
    )
    assert row is not None
    return {**dict(row), "errors": json.loads(row["errors"])}


async def worker_id_of(db: asyncpg.Connection, process: subprocess.Popen[bytes]) -> UUID:
    """The id a worker process registered under (waits for its row)."""
    found = await eventually(
        lambda: db.fetchval("SELECT id FROM pgqueue.workers WHERE pid = $1", process.pid),
        until=lambda value: value is not None or process.poll() is not None,
        within=30,
    )
    assert found is not None, f"worker exited with {process.returncode} before registering"
    return UUID(str(found))


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """A PostgreSQL cluster of this test's own, with a migrated database ``pgqueue``."""
    with throwaway_cluster() as started:
        admin = await asyncpg.connect(started.dsn())
        try:
            await admin.execute("CREATE DATABASE pgqueue")
        finally:
            await admin.close()
        await upgrade(started.dsn("pgqueue"))
        yield started


async def test_sigkilled_workers_job_is_rescued_by_another_worker_after_heartbeat_expiry(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    job_id = await queue.enqueue(HangsOnFirstAttempt(log_path=str(log)))
    a = workers.start("--app", APPS, *FAST_HEARTBEAT)
    await eventually(
        lambda: lines(log), until=alive(workers, a, lambda found: found == [f"start {job_id} 1"])
    )
    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"]) == ("running", 1)
    a_id = row["worker_id"]

    a.send_signal(signal.SIGKILL)
    assert await exit_code(workers, a) == -signal.SIGKILL
    b = workers.start("--app", APPS, *FAST_HEARTBEAT)
    b_id = await worker_id_of(db, b)

    await eventually(
        lambda: status_of(db, job_id),
        until=alive(workers, b, lambda s: s == "completed"),
        within=30,
    )
    row = await job_row(db, job_id)
    assert (row["attempts"], row["worker_id"]) == (2, b_id)
    assert [(e["type"], e["attempt"]) for e in row["errors"]] == [("WorkerLost", 1)]
    assert row["last_error"].startswith("WorkerLost")
    assert str(a_id) in row["last_error"], row["last_error"]
    assert lines(log) == [f"start {job_id} 1", f"start {job_id} 2", f"end {job_id} 2"]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM pgqueue.jobs WHERE worker_id = $1 AND status = 'running'", a_id
        )
        == 0
    )

    b.send_signal(signal.SIGTERM)
    assert await exit_code(workers, b) == 0, workers.log_of(b)


async def test_job_that_kills_its_worker_every_time_ends_failed_not_in_a_crash_loop(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    job_id = await queue.enqueue(KillsItsWorker(log_path=str(log)))  # max_retries=1: 2 attempts

    started: list[subprocess.Popen[bytes]] = []
    while len(started) < 5 and await status_of(db, job_id) != "failed":
        process = workers.start("--app", APPS, *FAST_HEARTBEAT)
        started.append(process)

        async def died_or_failed(process: subprocess.Popen[bytes] = process) -> tuple[Any, str]:
            return process.poll(), await status_of(db, job_id)

        await eventually(
            died_or_failed, until=lambda seen: seen[0] is not None or seen[1] == "failed", within=20
        )
        assert process.returncode in (None, 1), workers.log_of(process)  # None: still running

    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert [(e["type"], e["attempt"]) for e in row["errors"]] == [
        ("WorkerLost", 1),
        ("WorkerLost", 2),
    ]
    assert lines(log) == [f"start {job_id} 1", f"start {job_id} 2"]  # never a third run
    # Two workers died running it; the third buried it and lives on.
    assert [process.poll() for process in started] == [1, 1, None]
    survivor = started[-1]
    survivor.send_signal(signal.SIGTERM)
    assert await exit_code(workers, survivor) == 0, workers.log_of(survivor)


async def test_postgres_restart_mid_run_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    dsn = cluster.dsn("pgqueue")
    log = tmp_path / "runs.log"
    async with Queue.connect(dsn) as queue:
        ids = await queue.enqueue_batch([PacedNote(log_path=str(log)) for _ in range(2000)])
    workers = WorkerProcesses(dsn, tmp_path)
    try:
        process = workers.start(
            "--app", APPS, "--concurrency", "20", "--heartbeat-interval", "0.5",
            "--heartbeat-timeout", "5",
        )  # fmt: skip
        db = await asyncpg.connect(dsn)
        try:
            await eventually(
                lambda: count(db, "completed"),
                until=alive(workers, process, lambda n: n >= 200),
                within=30,
            )
            before = await db.fetchval("SELECT pg_postmaster_start_time()")
        finally:
            await db.close()

        await asyncio.to_thread(cluster.restart)

        db = await asyncpg.connect(dsn)
        try:
            assert await db.fetchval("SELECT pg_postmaster_start_time()") != before
            assert await count(db, "completed") < 2000, "the restart did not land mid-run"
            try:
                await eventually(
                    lambda: count(db, "completed"),
                    until=alive(workers, process, lambda n: n == 2000),
                    within=90,
                )
            except AssertionError as error:
                unfinished = await db.fetch(
                    "SELECT id, status::text, attempts, worker_id, started_at FROM pgqueue.jobs "
                    "WHERE status <> 'completed' ORDER BY id"
                )
                ran = set(map(int, lines(log))) & {row["id"] for row in unfinished}
                raise AssertionError(
                    f"{error}\nunfinished: {[tuple(row) for row in unfinished]}\n"
                    f"of which in the log: {sorted(ran)}\nworker log:\n{workers.log_of(process)}"
                ) from None
            assert (
                await db.fetchval("SELECT count(*) FROM pgqueue.jobs WHERE status <> 'completed'")
                == 0
            )
        finally:
            await db.close()

        runs = lines(log)
        assert len(runs) == len(set(runs)), "a job ran twice though its worker never died"
        assert sorted(int(run) for run in runs) == sorted(ids)
        assert process.poll() is None, workers.log_of(process)  # it rode the restart out
        process.send_signal(signal.SIGTERM)
        assert await exit_code(workers, process) == 0, workers.log_of(process)
    finally:
        workers.kill_all()


async def test_claim_whose_reply_was_lost_with_the_connection_still_runs(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    """A claim can commit while its reply is lost with the connection (asyncpg's pool even
    raises after the rows arrived, when resetting a connection killed just then): the worker
    never learns it holds the job. It must not stay ``running`` under a live worker forever.

    Here the claim committed a minute ago (its connection stalled, then died), so a worker may
    rightly wait a while before it decides a claim of its own is not merely still in flight."""
    log = tmp_path / "runs.log"
    process = workers.start("--app", APPS, *FAST_HEARTBEAT)
    worker_id = await worker_id_of(db, process)
    job_id = await queue.enqueue(Note(log_path=str(log)), delay=3600)  # not claimable by it

    # The claim's effect (as claim_jobs writes it), committed behind the worker's back ...
    claimed = await db.execute(
        "UPDATE pgqueue.jobs SET status = 'running', attempts = attempts + 1, run_at = now(), "
        "started_at = now() - interval '1 minute', finished_at = NULL, worker_id = $1 "
        "WHERE id = $2",
        worker_id,
        job_id,
    )
    assert claimed == "UPDATE 1"
    # ... and the connection it came over is gone: every session of the worker is.
    killed = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert killed >= 1

    await eventually(
        lambda: status_of(db, job_id),
        until=alive(workers, process, lambda s: s == "completed"),
        within=30,
    )
    assert lines(log) == [str(job_id)]
    process.send_signal(signal.SIGTERM)
    assert await exit_code(workers, process) == 0, workers.log_of(process)


LISTENING = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
)


async def test_killed_listen_connection_still_gets_new_jobs_promptly(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    process = workers.start("--poll-interval", "60")
    await worker_id_of(db, process)  # registered, hence listening
    listening = await eventually(
        lambda: db.fetch(LISTENING), until=alive(workers, process, lambda rows: len(rows) == 1)
    )

    killed = await db.fetch(
        "SELECT pid, pg_terminate_backend(pid) AS done FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    assert [(row["pid"], row["done"]) for row in killed] == [(listening[0]["pid"], True)]
    await eventually(  # a new LISTEN session: the worker reconnected
        lambda: db.fetch(LISTENING),
        until=alive(workers, process, lambda rows: any(r["pid"] != killed[0]["pid"] for r in rows)),
        within=15,
    )

    job_id = await queue.enqueue(Note(log_path=str(log)))
    enqueued = time.monotonic()
    await eventually(
        lambda: status_of(db, job_id),
        until=alive(workers, process, lambda s: s == "completed"),
        within=5,
    )
    assert time.monotonic() - enqueued < 5  # woken by NOTIFY, not by the 60 s poll
    assert lines(log) == [str(job_id)]
    assert process.poll() is None, workers.log_of(process)
    process.send_signal(signal.SIGTERM)
    assert await exit_code(workers, process) == 0, workers.log_of(process)


async def test_sigterm_with_jobs_in_flight_leaves_nothing_running(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    short = await queue.enqueue_batch([Sleep(seconds=0.3, log_path=str(log)) for _ in range(3)])
    long = await queue.enqueue_batch([Sleep(seconds=3600, log_path=str(log)) for _ in range(3)])
    process = workers.start("--concurrency", "10", "--shutdown-grace", "1")
    started = {f"start {job_id}" for job_id in short + long}
    await eventually(
        lambda: set(lines(log)), until=alive(workers, process, started.issubset), within=30
    )

    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)

    assert await exit_code(workers, process, within=15) == 0, workers.log_of(process)
    assert time.monotonic() - signalled < 10
    rows = await db.fetch("SELECT id, status::text, attempts, worker_id FROM pgqueue.jobs")
    outcome = {row["id"]: (row["status"], row["attempts"]) for row in rows}
    assert outcome == {
        **{job_id: ("completed", 1) for job_id in short},
        **{job_id: ("pending", 0) for job_id in long},
    }
    assert await count(db, "running") == 0
    assert all(row["worker_id"] is None for row in rows if row["id"] in long)
    assert set(lines(log)) == started | {f"end {job_id}" for job_id in short}
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers") == 0
