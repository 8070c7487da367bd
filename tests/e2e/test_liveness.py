"""A job runs again only when its worker is really gone: each worker is judged by its own lease,
and a handler that blocks the event loop keeps its heartbeat going, up to the blocked-loop
timeout. Real ``pgqueue work`` processes; judged by the rows and by what the handlers recorded.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import asyncpg

from pgqueue import Queue
from tests.e2e.conftest import WorkerProcesses
from tests.e2e.fault_jobs import APPS, BlocksTheLoop
from tests.e2e.test_faults import FAST_HEARTBEAT, alive, exit_code, job_row, worker_id_of
from tests.factories import eventually, lines, status_of
from tests.jobs import Sleep

# A worker that serves no queue of these jobs: it only rescues, with a 2 s timeout.
HASTY_RESCUER = ("--app", APPS, "--queues", "elsewhere", *FAST_HEARTBEAT)


async def stop_all(workers: WorkerProcesses, *processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert await exit_code(workers, process) == 0, workers.log_of(process)


async def test_a_short_timeout_elsewhere_leaves_a_healthy_workers_job_alone(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    """A worker with the default lease (beats every 5 s, dead after 30 s) runs a 7 s job while
    a worker started with a 2 s heartbeat timeout looks for dead workers twice a second."""
    log = tmp_path / "runs.log"
    patient = workers.start("--app", APPS)  # the defaults
    patient_id = await worker_id_of(db, patient)
    hasty = workers.start(*HASTY_RESCUER)
    await worker_id_of(db, hasty)
    job_id = await queue.enqueue(Sleep(seconds=7, log_path=str(log)))

    await eventually(
        lambda: status_of(db, job_id),
        until=alive(workers, hasty, alive(workers, patient, lambda s: s == "completed")),
        within=30,
    )

    row = await job_row(db, job_id)
    assert (row["attempts"], row["worker_id"], row["errors"]) == (1, patient_id, [])
    assert lines(log) == [f"start {job_id}", f"end {job_id}"]
    assert "rescued" not in workers.log_of(hasty)
    await stop_all(workers, patient, hasty)


async def test_an_async_handler_blocking_the_loop_past_the_lease_runs_once(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    """An 8 s ``time.sleep()`` in an ``async def`` handler, on a worker whose lease is 2 s."""
    log = tmp_path / "runs.log"
    runner = workers.start("--app", APPS, *FAST_HEARTBEAT)
    runner_id = await worker_id_of(db, runner)
    rescuer = workers.start(*HASTY_RESCUER)
    await worker_id_of(db, rescuer)
    job_id = await queue.enqueue(BlocksTheLoop(log_path=str(log), seconds=8))

    await eventually(
        lambda: status_of(db, job_id),
        until=alive(workers, rescuer, alive(workers, runner, lambda s: s == "completed")),
        within=40,
    )

    row = await job_row(db, job_id)
    assert (row["attempts"], row["worker_id"], row["errors"]) == (1, runner_id, [])
    assert lines(log) == [f"start {job_id} 1", f"end {job_id} 1"]
    blocker = f"job {job_id} (tests.e2e.fault_jobs.BlocksTheLoop)"
    runner_log = await eventually(
        lambda: workers.log_of(runner), until=lambda text: "the event loop ran again" in text
    )
    assert f"{blocker} has blocked the event loop for" in runner_log
    assert "fault_jobs.py:" in runner_log  # the line it blocks on
    assert f"the event loop ran again after {blocker} held it for about" in runner_log
    assert "rescued" not in workers.log_of(rescuer)
    await stop_all(workers, runner, rescuer)


async def test_a_loop_blocked_past_the_blocked_loop_timeout_counts_as_dead(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    """Hung for 8 s with a 1 s blocked-loop timeout and a 2 s lease: the worker stops beating,
    and another rescues its job and runs it again."""
    log = tmp_path / "runs.log"
    job_id = await queue.enqueue(BlocksTheLoop(log_path=str(log), seconds=8))
    hung = workers.start("--app", APPS, *FAST_HEARTBEAT, "--blocked-loop-timeout", "1")
    await eventually(
        lambda: lines(log), until=alive(workers, hung, lambda found: found == [f"start {job_id} 1"])
    )
    hung_id = (await job_row(db, job_id))["worker_id"]
    other = workers.start("--app", APPS, *FAST_HEARTBEAT)
    other_id = await worker_id_of(db, other)

    await eventually(
        lambda: status_of(db, job_id),
        until=alive(workers, other, lambda s: s == "completed"),
        within=30,
    )

    row = await job_row(db, job_id)
    assert (row["attempts"], row["worker_id"]) == (2, other_id)
    assert [(e["type"], e["attempt"], e["worker_id"]) for e in row["errors"]] == [
        ("WorkerLost", 1, str(hung_id))
    ]
    assert lines(log)[:3] == [f"start {job_id} 1", f"start {job_id} 2", f"end {job_id} 2"]
    await eventually(lambda: lines(log), until=lambda found: len(found) == 4, within=20)
    assert "past the blocked-loop timeout" in workers.log_of(hung)
    await stop_all(workers, hung, other)
