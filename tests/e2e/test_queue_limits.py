"""Queue pause and limits across real ``pgqueue work`` processes: a concurrency limit holds
cluster-wide, a paused queue is left alone until ``pgqueue resume``, and a slot freed in another
process wakes an idle worker at once."""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pgqueue import Queue
from tests.e2e.conftest import WorkerProcesses, pgqueue_command
from tests.factories import eventually, lines, running, status_of
from tests.jobs import Note, QueueLimitHold, QueueLimitNap


async def registered(db: asyncpg.Connection, n: int) -> None:
    """Wait until ``n`` workers are registered (a worker row means it listens)."""
    await eventually(
        lambda: db.fetchval("SELECT count(*) FROM pgqueue.workers"),
        until=lambda found: found == n,
        within=30,
    )


async def stop(workers: WorkerProcesses) -> None:
    """SIGTERM every worker process; each exits cleanly."""
    for process in workers.processes:
        process.send_signal(signal.SIGTERM)
    assert [await workers.wait(process) for process in workers.processes] == [0] * len(
        workers.processes
    )


async def test_three_worker_processes_never_run_more_than_the_queue_limit_at_once(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses
) -> None:
    for _ in range(3):
        workers.start("--queues", "limited", "--concurrency", "10", "--queue-limits", "limited=4")
    await registered(db, 3)
    assert tuple(
        await db.fetchrow(
            "SELECT paused, concurrency_limit, rate_limit FROM pgqueue.queues"
            " WHERE name = 'limited'"
        )
    ) == (False, 4, None)

    ids = await queue.enqueue_batch([QueueLimitNap(seconds=0.03) for _ in range(200)])
    # Sample the running jobs back to back, from another session, until all have completed.
    most, samples, deadline = 0, 0, time.monotonic() + 30
    while True:
        sample = await db.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'running') AS running,"
            " count(*) FILTER (WHERE status = 'completed') AS completed"
            " FROM pgqueue.jobs WHERE queue = 'limited'"
        )
        most, samples = max(most, sample["running"]), samples + 1
        if sample["completed"] == len(ids):
            break
        assert time.monotonic() < deadline, f"{sample['completed']} completed within 30 s"

    assert 1 < most <= 4, f"at most {most} running in {samples} samples"
    assert samples > 50
    assert await db.fetchval("SELECT max(attempts) FROM pgqueue.jobs") == 1
    assert await db.fetchval("SELECT count(DISTINCT worker_id) FROM pgqueue.jobs") >= 2
    await stop(workers)


async def test_work_command_sets_concurrency_and_rate_limits_at_start(
    db: asyncpg.Connection, workers: WorkerProcesses
) -> None:
    workers.start(
        "--queues",
        "limited",
        "--queue-limits",
        "limited=2, emails=5",
        "--queue-rates",
        "limited=100/1m,reports=3/500ms",
    )
    await registered(db, 1)
    rows = await db.fetch(
        "SELECT name, concurrency_limit, rate_limit, rate_period FROM pgqueue.queues ORDER BY 1"
    )
    assert [tuple(row) for row in rows] == [
        ("emails", 5, None, None),
        ("limited", 2, 100, timedelta(minutes=1)),
        ("reports", None, 3, timedelta(milliseconds=500)),
    ]
    await stop(workers)


async def test_paused_queue_is_left_alone_by_a_worker_process_until_pgqueue_resume(
    queue: Queue, db: asyncpg.Connection, dsn: str, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    workers.start("--queues", "emails,limited", "--poll-interval", "60")
    await registered(db, 1)

    paused = pgqueue_command("pause", "emails", dsn=dsn)
    assert (paused.returncode, paused.stdout.strip()) == (0, "queue emails paused")
    emails = await queue.enqueue_batch([Note(log_path=str(log))] * 3, queue="emails")
    other = await queue.enqueue(QueueLimitNap())
    await queue.wait_for(other, 10)  # the other queue keeps running
    assert [await status_of(db, job_id) for job_id in emails] == ["pending"] * 3
    assert lines(log) == []

    resumed = pgqueue_command("resume", "emails", dsn=dsn)
    assert (resumed.returncode, resumed.stdout.strip()) == (0, "queue emails resumed")
    for job_id in emails:  # woken by the NOTIFY of the resume, not its 60 s poll
        await queue.wait_for(job_id, 5)
    assert sorted(lines(log)) == sorted(str(job_id) for job_id in emails)
    await stop(workers)


async def test_a_job_finishing_in_another_process_wakes_an_idle_worker_at_once(
    queue: Queue,
    db: asyncpg.Connection,
    workers: WorkerProcesses,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log, release = tmp_path / "runs.log", tmp_path / "release"
    await queue.set_queue_limits("limited", concurrency=1)
    other = workers.start("--queues", "limited", "--concurrency", "1", "--shutdown-grace", "30")
    held = await queue.enqueue(QueueLimitHold(log_path=str(log), release_path=str(release)))
    await eventually(lambda: lines(log), until=lambda found: found == [f"start {held}"])
    waiting = await queue.enqueue(QueueLimitNap())

    # A worker here, started after every NOTIFY so far: only a new one can wake it in time.
    answers: list[float | None] = []
    seconds_until_next_job = queue.store.seconds_until_next_job

    async def recorded(**kwargs: Any) -> float | None:
        answers.append(await seconds_until_next_job(**kwargs))
        return answers[-1]

    monkeypatch.setattr(queue.store, "seconds_until_next_job", recorded)
    async with running(queue, queues=["limited"], poll_interval=60) as worker:
        # It claimed nothing (the queue is at its limit) and sleeps until woken.
        await eventually(lambda: answers, until=lambda found: None in found)
        assert await status_of(db, waiting) == "pending"
        # The other process stops claiming, then finishes its job: that frees the slot.
        other.send_signal(signal.SIGTERM)
        await eventually(
            lambda: workers.log_of(other), until=lambda text: "stopping gracefully" in text
        )
        release.touch()
        await queue.wait_for(waiting, 5)  # the NOTIFY of the freed slot, not the 60 s poll
        assert await workers.wait(other) == 0
    rows = await db.fetch("SELECT id, worker_id FROM pgqueue.jobs ORDER BY id")
    assert rows[1]["worker_id"] == worker.id
    assert rows[0]["worker_id"] not in (None, worker.id)
