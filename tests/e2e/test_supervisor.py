"""``pgqueue work --workers N``: a supervisor over N worker processes."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import asyncpg

from pgqueue import Queue
from tests.e2e.conftest import WorkerProcesses, pgqueue_command
from tests.factories import count, eventually, lines, status_of
from tests.jobs import Note, Sleep

FAST = ("--heartbeat-timeout", "2", "--heartbeat-interval", "0.5")


async def worker_pids(db: asyncpg.Connection) -> set[int]:
    return {row["pid"] for row in await db.fetch("SELECT pid FROM pgqueue.workers")}


async def test_supervisor_restarts_a_killed_child_and_stops_all_on_sigterm(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    supervisor = workers.start("--workers", "2", *FAST)
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
    assert "before it registered, 3 times in a row; giving up" in result.stderr
    assert "run `pgqueue migrate`" in result.stderr


def is_gone(pid: int) -> bool:
    """Whether the process has exited (a zombie waiting for its new parent counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


async def test_children_stop_when_the_supervisor_is_killed(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    supervisor = workers.start("--workers", "2", *FAST, "--shutdown-grace", "1")
    children = await eventually(
        lambda: worker_pids(db), until=lambda pids: len(pids) == 2, within=30
    )
    job_id = await queue.enqueue(Sleep(seconds=3600, log_path=str(log)))
    await eventually(lambda: lines(log), until=lambda found: found == [f"start {job_id}"])

    supervisor.kill()
    assert await workers.wait(supervisor) == -signal.SIGKILL

    # Each child sees its link close, stops as on SIGTERM (its running job goes back to the
    # queue after the 1 s grace) and removes its row.
    await eventually(lambda: worker_pids(db), until=lambda pids: pids == set(), within=10)
    await eventually(lambda: all(is_gone(pid) for pid in children), until=bool, within=10)
    assert await status_of(db, job_id) == "pending"


async def test_a_slot_killed_again_and_again_restarts_with_back_off_while_the_others_work(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    supervisor = workers.start("--workers", "2", *FAST)
    seen = await eventually(lambda: worker_pids(db), until=lambda pids: len(pids) == 2, within=30)
    victim, survivor = sorted(seen)
    for kill in range(3):  # as the OOM killer would, each time the slot's worker is back
        await eventually(
            lambda: workers.log_of(supervisor),
            until=lambda text, pid=victim: f"(pid {pid}) registered" in text,
            within=30,
        )
        os.kill(victim, signal.SIGKILL)
        if kill == 2:  # while the slot waits 4 s to restart, the other works on
            ids = await queue.enqueue_batch([Note(log_path=str(log)) for _ in range(20)])
            await eventually(lambda: count(db, "completed"), until=lambda n: n == 20, within=30)
            assert sorted(map(int, lines(log))) == ids  # each ran once
        new = await eventually(
            lambda: worker_pids(db),
            until=lambda pids, known=seen: bool(pids - known) or supervisor.poll() is not None,
            within=30,
        )
        assert supervisor.poll() is None, workers.log_of(supervisor)
        (victim,) = new - seen
        seen |= new
    assert survivor in await worker_pids(db)  # never restarted

    supervisor.send_signal(signal.SIGTERM)
    assert await workers.wait(supervisor, within=30) == 0, workers.log_of(supervisor)
    restarts = re.findall(r"was killed by SIGKILL after \d+s; restarting it in (\d+)s",
                          workers.log_of(supervisor))  # fmt: skip
    assert restarts == ["1", "2", "4"]
