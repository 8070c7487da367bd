"""``pgqueue work --workers N``: a supervisor over N worker processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import asyncpg

from pgqueue import Queue
from tests.e2e.conftest import WorkerProcesses, pgqueue_command
from tests.factories import eventually
from tests.jobs import Note


async def worker_pids(db: asyncpg.Connection) -> set[int]:
    return {row["pid"] for row in await db.fetch("SELECT pid FROM pgqueue.workers")}


async def test_supervisor_restarts_a_killed_child_and_stops_all_on_sigterm(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    supervisor = workers.start(
        "--workers", "2", "--heartbeat-timeout", "2", "--heartbeat-interval", "0.5"
    )
    first = await eventually(lambda: worker_pids(db), until=lambda pids: len(pids) == 2, within=30)

    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    # The dead child's row ages out (heartbeat timeout 2 s); a new child registers.
    await eventually(
        lambda: worker_pids(db),
        until=lambda pids: len(pids) == 2 and victim not in pids,
        within=30,
    )
    job_id = await queue.enqueue(Note(log_path=str(tmp_path / "runs.log")))
    await queue.wait_for(job_id, 10)  # the children work

    supervisor.send_signal(signal.SIGTERM)

    assert await workers.wait(supervisor, within=30) == 0, workers.log_of(supervisor)
    assert await worker_pids(db) == set()  # every child deregistered on its graceful stop
    log = workers.log_of(supervisor)
    assert "starting 2 worker processes" in log
    assert "restarting it" in log


async def test_supervisor_gives_up_when_children_crash_at_start(empty_dsn: str) -> None:
    # The database has no schema: every child exits at once saying to run pgqueue migrate.
    result = pgqueue_command("work", "--app", "tests.jobs", "--workers", "2", "--dsn", empty_dsn)
    assert result.returncode == 1
    assert "giving up" in result.stderr
    assert "run `pgqueue migrate`" in result.stderr
