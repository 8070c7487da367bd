"""Prefetch: a Worker claims ``prefetch`` jobs ahead of its free slots and keeps them ready
(claimed, 'running' under its id, not started). What it buffers, how a buffered job is
cancelled or released at stop, and how the dedicated claim and completion connections recover
when the server drops them; every outcome read from the database."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from click.testing import CliRunner

from pgqueue import Queue, Worker
from pgqueue.cli import main
from pgqueue.cli import work as work_command
from tests.factories import count, eventually, lines, running
from tests.jobs import Note, QueueLimitHold, Sleep

QUEUE = "prefetch"  # every job of a test goes here, so the claim order is priority, run_at, id

JobState = tuple[str, int, UUID | None]


async def states(db: asyncpg.Connection, ids: list[int]) -> list[JobState]:
    """(status, attempts, worker_id) of each job, in id order."""
    rows = await db.fetch(
        "SELECT status::text, attempts, worker_id FROM pgqueue.jobs WHERE id = ANY($1) ORDER BY id",
        ids,
    )
    return [(row["status"], row["attempts"], row["worker_id"]) for row in rows]


async def ids_with_status(db: asyncpg.Connection, status: str) -> list[int]:
    rows = await db.fetch(
        "SELECT id FROM pgqueue.jobs WHERE status = $1::text::pgqueue.job_status ORDER BY id",
        status,
    )
    return [row["id"] for row in rows]


async def hold_the_slot(queue: Queue, tmp_path: Path) -> int:
    """Enqueue a job that runs until ``tmp_path / "release"`` exists; return once it started."""
    hold_log = tmp_path / "hold.log"
    blocker = await queue.enqueue(
        QueueLimitHold(log_path=str(hold_log), release_path=str(tmp_path / "release")),
        queue=QUEUE,
    )
    await eventually(lambda: lines(hold_log), until=lambda found: found == [f"start {blocker}"])
    return blocker


async def enqueue_notes(queue: Queue, log: Path, how_many: int) -> list[int]:
    return await queue.enqueue_batch([Note(log_path=str(log))] * how_many, queue=QUEUE)


# --- the buffer ----------------------------------------------------------------------------------


async def test_a_busy_worker_keeps_prefetch_jobs_claimed_and_runs_each_once_when_freed(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    # shutdown_grace=0: should a check fail, the held job does not keep the test waiting.
    async with running(
        queue, queues=[QUEUE], concurrency=1, prefetch=2, shutdown_grace=0
    ) as worker:
        blocker = await hold_the_slot(queue, tmp_path)
        notes = await enqueue_notes(queue, log, 5)

        # The NOTIFY of the batch wakes the worker: no free slot, so it claims just the 2.
        assert await eventually(
            lambda: ids_with_status(db, "running"), until=lambda ids: len(ids) == 3
        ) == [blocker, *notes[:2]]
        assert (
            await states(db, notes) == [("running", 1, worker.id)] * 2 + [("pending", 0, None)] * 3
        )
        assert lines(log) == []  # claimed, not started

        (tmp_path / "release").touch()
        await eventually(lambda: count(db, "completed"), until=lambda n: n == 6)

    assert lines(tmp_path / "hold.log") == [f"start {blocker}"]
    assert lines(log) == [str(note) for note in notes]  # each once, in claim order
    assert await states(db, [blocker, *notes]) == [("completed", 1, worker.id)] * 6


@pytest.mark.parametrize(("concurrency", "prefetch"), [(1, 0), (3, 0), (4, 1), (9, 2)])
async def test_default_prefetch_is_a_quarter_of_the_concurrency(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path, concurrency: int, prefetch: int
) -> None:
    hold_log = tmp_path / "hold.log"
    hold = QueueLimitHold(log_path=str(hold_log), release_path=str(tmp_path / "release"))
    await queue.enqueue_batch([hold] * (concurrency + 3), queue=QUEUE)
    async with running(queue, queues=[QUEUE], concurrency=concurrency, shutdown_grace=0):
        # One claim of free slots + prefetch jobs; then no slot frees up (nothing is released).
        await eventually(lambda: lines(hold_log), until=lambda found: len(found) == concurrency)
        await eventually(lambda: count(db, "running"), until=lambda n: n == concurrency + prefetch)
        await asyncio.sleep(0.3)  # a window in which a second claim would show: none may come
        assert await count(db, "running") == concurrency + prefetch
        assert len(lines(hold_log)) == concurrency


# --- cancel --------------------------------------------------------------------------------------


async def test_a_cancelled_buffered_job_is_dropped_and_never_runs(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(
        queue, queues=[QUEUE], concurrency=1, prefetch=2, poll_interval=60, shutdown_grace=0
    ):
        blocker = await hold_the_slot(queue, tmp_path)
        notes = await enqueue_notes(queue, log, 4)
        await eventually(lambda: ids_with_status(db, "running"), until=lambda ids: len(ids) == 3)
        cancelled, *others = notes

        assert await queue.cancel(cancelled)  # claimed by the worker, next to start
        # Dropping it frees a place in the buffer. The NOTIFY of this enqueue reaches the worker
        # after the cancel's (in commit order), and the place is then refilled with the next job.
        others.append(await queue.enqueue(Note(log_path=str(log)), queue=QUEUE))
        assert await eventually(
            lambda: ids_with_status(db, "running"), until=lambda ids: len(ids) == 3
        ) == [blocker, *others[:2]]

        (tmp_path / "release").touch()
        await eventually(lambda: count(db, "completed"), until=lambda n: n == 5)

    assert sorted(lines(log)) == sorted(str(job_id) for job_id in others)
    assert str(cancelled) not in lines(log)
    assert await db.fetchval("SELECT status::text FROM pgqueue.jobs WHERE id = $1", cancelled) == (
        "cancelled"
    )
    assert [state[:2] for state in await states(db, others)] == [("completed", 1)] * 4


# --- stop ----------------------------------------------------------------------------------------


async def test_stop_releases_buffered_jobs_to_pending_without_charging_an_attempt(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(
        queue, queues=[QUEUE], concurrency=1, prefetch=2, shutdown_grace=0.2
    ) as worker:
        blocker = await hold_the_slot(queue, tmp_path)
        notes = await enqueue_notes(queue, log, 4)
        await eventually(lambda: ids_with_status(db, "running"), until=lambda ids: len(ids) == 3)
        assert await states(db, notes[:2]) == [("running", 1, worker.id)] * 2

    assert await states(db, [blocker, *notes]) == [("pending", 0, None)] * 5
    assert lines(log) == []
    assert lines(tmp_path / "hold.log") == [f"start {blocker}"]


async def test_a_slot_freed_during_the_grace_period_starts_no_buffered_job(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue, queues=[QUEUE], concurrency=1, prefetch=2, shutdown_grace=30) as w:
        blocker = await hold_the_slot(queue, tmp_path)
        notes = await enqueue_notes(queue, log, 2)
        await eventually(lambda: ids_with_status(db, "running"), until=lambda ids: len(ids) == 3)

        stopping = asyncio.create_task(w.stop())
        await asyncio.sleep(0)  # one step of stop(): the fetcher is told before the release
        (tmp_path / "release").touch()  # the blocker finishes within the grace period
        await stopping

    assert await states(db, [blocker]) == [("completed", 1, w.id)]
    assert await states(db, notes) == [("pending", 0, None)] * 2
    assert lines(log) == []


async def test_cancelling_the_run_task_starts_no_buffered_job(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    worker = Worker(queue, queues=[QUEUE], concurrency=1, prefetch=2, shutdown_grace=30)
    task = asyncio.create_task(worker.run())
    try:
        blocker = await hold_the_slot(queue, tmp_path)
        notes = await enqueue_notes(queue, log, 2)
        await eventually(lambda: ids_with_status(db, "running"), until=lambda ids: len(ids) == 3)
    finally:
        task.cancel()  # no grace period: the running job is cancelled too
        with pytest.raises(asyncio.CancelledError):
            await task

    assert await states(db, [blocker, *notes]) == [("pending", 0, None)] * 3
    assert lines(log) == []


# --- configuration -------------------------------------------------------------------------------


async def test_negative_prefetch_is_refused(queue: Queue) -> None:
    with pytest.raises(ValueError, match="prefetch must be a whole number of at least 0, got -1"):
        Worker(queue, prefetch=-1)


async def test_work_refuses_a_negative_prefetch_with_exit_2(
    dsn: str, db: asyncpg.Connection
) -> None:
    args = ["work", "--app", "tests.jobs", "--prefetch", "-1", "--dsn", dsn]
    result = await asyncio.to_thread(CliRunner().invoke, main, args)

    assert result.exit_code == 2, result.output
    assert "'--prefetch'" in result.stderr
    assert "-1 is not in the range x>=0" in result.stderr
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers") == 0


@pytest.mark.parametrize(("flags", "prefetch"), [([], None), (["--prefetch", "3"], 3)])
async def test_work_passes_prefetch_to_the_worker(
    dsn: str, monkeypatch: pytest.MonkeyPatch, flags: list[str], prefetch: int | None
) -> None:
    given: dict[str, Any] = {}

    class RecordingWorker:
        """Takes the options ``pgqueue work`` builds, and runs nothing."""

        def __init__(self, queue: Queue, **options: Any) -> None:
            given.update(options)

        async def run(self) -> None:
            return None

    monkeypatch.setattr(work_command, "Worker", RecordingWorker)
    args = ["work", "--app", "tests.jobs", *flags, "--dsn", dsn]
    result = await asyncio.to_thread(CliRunner().invoke, main, args)

    assert result.exit_code == 0, result.output
    assert given["prefetch"] == prefetch


# --- connections lost ----------------------------------------------------------------------------


async def terminate_other_backends(db: asyncpg.Connection) -> list[str]:
    """Terminate every backend of the test database but ``db``'s own; their last queries."""
    # MATERIALIZED: pick the backends first, so no backend of another database is terminated.
    rows = await db.fetch(
        "WITH others AS MATERIALIZED ("
        "  SELECT pid, query FROM pg_stat_activity"
        "  WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ") SELECT query FROM others WHERE pg_terminate_backend(pid)"
    )
    return [row["query"] for row in rows]


def fetched(query: str) -> bool:
    """Whether a backend's last query was the fetcher's: a claim, or the look-ahead after one."""
    return "pgqueue.claim_jobs(" in query or "pgqueue.next_run_at(" in query


async def claim_connections(db: asyncpg.Connection) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE '%pgqueue.claim_jobs(%'"
        )
    )


async def terminate_mid_batch(
    queue: Queue, db: asyncpg.Connection, log: Path
) -> tuple[list[int], int, list[str]]:
    """Enqueue a batch and, once the worker has claimed and finished some of it, terminate its
    connections: the batch's ids, the jobs still pending then, the terminated backends' last
    queries."""
    done = await count(db, "completed")
    # On our own connection: the Queue's pool is terminated with the rest.
    ids = await queue.enqueue_batch(
        [Sleep(seconds=0.02, log_path=str(log))] * 40, queue=QUEUE, connection=db
    )
    await eventually(lambda: claim_connections(db), until=lambda n: n > 0)
    await eventually(lambda: count(db, "completed"), until=lambda n: n > done)
    pending = await count(db, "pending")
    return ids, pending, await terminate_other_backends(db)


async def test_worker_recovers_when_the_server_terminates_its_connections(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    ids: list[int] = []
    pending_at_kill: list[int] = []
    killed: list[list[str]] = []
    async with running(
        queue, queues=[QUEUE], concurrency=4, prefetch=4, poll_interval=0.2, heartbeat_interval=1
    ) as worker:
        for _ in range(5):
            batch, pending, queries = await terminate_mid_batch(queue, db, log)
            ids += batch
            pending_at_kill.append(pending)
            killed.append(queries)
        # A claim that committed as its connection died is released after 10 s: allow for it.
        await eventually(lambda: count(db, "completed"), until=lambda n: n == len(ids), within=60)

    assert all(pending_at_kill), pending_at_kill  # each kill left jobs to claim afterwards
    # Each time, the fetcher's connection (its last query a claim, or the look-ahead after a short
    # claim) was among those terminated; a completion one at least once.
    assert all(any(fetched(query) for query in queries) for queries in killed), killed
    assert any("pgqueue.complete_jobs(" in query for queries in killed for query in queries)
    assert await states(db, ids) == [("completed", 1, worker.id)] * len(ids)
    starts = Counter(line.split()[1] for line in lines(log) if line.startswith("start"))
    assert starts == Counter({str(job_id): 1 for job_id in ids})
