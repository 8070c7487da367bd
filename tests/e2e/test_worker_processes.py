"""Worker processes started as operators start them: ``pgqueue work``, stopped by signals."""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg

from pgqueue import Queue
from tests.e2e.conftest import WorkerProcesses
from tests.factories import count, eventually, lines
from tests.jobs import BlockingSleep, Note, Sleep


async def test_three_worker_processes_run_each_of_10000_jobs_exactly_once(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    ids = await queue.enqueue_batch([Note(log_path=str(log)) for _ in range(10_000)])
    assert len(set(ids)) == 10_000
    started = [workers.start("--queues", "tests", "--concurrency", "20") for _ in range(3)]

    await eventually(lambda: count(db, "completed"), until=lambda n: n == 10_000, within=120)

    for process in started:
        process.send_signal(signal.SIGTERM)
    assert [await workers.wait(process) for process in started] == [0, 0, 0]
    runs = lines(log)
    assert len(runs) == 10_000  # no job ran twice ...
    assert sorted(int(run) for run in runs) == sorted(ids)  # ... and none was missed
    assert await db.fetchval("SELECT max(attempts) FROM pgqueue.jobs") == 1
    assert await db.fetchval("SELECT count(DISTINCT worker_id) FROM pgqueue.jobs") == 3
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers") == 0


async def test_sigterm_lets_running_jobs_finish_and_claims_nothing_more(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    first = await queue.enqueue_batch([Sleep(seconds=1, log_path=str(log)) for _ in range(2)])
    process = workers.start("--concurrency", "2", "--shutdown-grace", "30")
    await eventually(lambda: lines(log), until=lambda found: len(found) == 2, within=30)
    later = await queue.enqueue(Sleep(seconds=1, log_path=str(log)))

    process.send_signal(signal.SIGTERM)

    assert await workers.wait(process) == 0
    statuses = await db.fetch("SELECT id, status::text, attempts FROM pgqueue.jobs ORDER BY id")
    assert [(r["id"], r["status"], r["attempts"]) for r in statuses] == [
        (first[0], "completed", 1),
        (first[1], "completed", 1),
        (later, "pending", 0),
    ]
    assert sorted(lines(log)) == sorted([f"start {i}" for i in first] + [f"end {i}" for i in first])
    assert "stopping gracefully" in workers.log_of(process)


async def test_second_signal_stops_at_once_and_releases_the_running_job(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    job_id = await queue.enqueue(Sleep(seconds=3600, log_path=str(log)))
    process = workers.start("--shutdown-grace", "3600")
    await eventually(
        lambda: lines(log), until=lambda found: found == [f"start {job_id}"], within=30
    )

    process.send_signal(signal.SIGTERM)
    await eventually(
        lambda: workers.log_of(process), until=lambda text: "stopping gracefully" in text
    )
    process.send_signal(signal.SIGINT)

    assert await workers.wait(process, within=15) == 0
    row = await db.fetchrow(
        "SELECT status::text, attempts, worker_id FROM pgqueue.jobs WHERE id = $1", job_id
    )
    assert (row["status"], row["attempts"], row["worker_id"]) == ("pending", 0, None)
    assert await count(db, "running") == 0


async def test_worker_exits_on_sigterm_even_while_a_sync_job_blocks_its_thread(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    job_id = await queue.enqueue(BlockingSleep(seconds=3600, log_path=str(log)))
    process = workers.start("--shutdown-grace", "0.5")
    await eventually(
        lambda: lines(log), until=lambda found: found == [f"start {job_id}"], within=30
    )

    process.send_signal(signal.SIGTERM)

    assert await workers.wait(process, within=15) == 0
    row = await db.fetchrow("SELECT status::text, attempts FROM pgqueue.jobs WHERE id = $1", job_id)
    assert (row["status"], row["attempts"]) == ("pending", 0)


async def test_work_command_polls_only_with_no_listen(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    process = workers.start("--no-listen", "--poll-interval", "0.1")
    job_id = await queue.enqueue(Note(log_path=str(tmp_path / "runs.log")))
    await queue.wait_for(job_id, 30)
    listening = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
        " AND datname = current_database()"
    )
    assert listening == 0
    assert "polling only" in workers.log_of(process)
