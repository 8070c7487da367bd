"""An in-process Worker against a real database: what runs, when, how often, with what outcome."""

from __future__ import annotations

import asyncio
import math
import re
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from pgqueue import Backoff, Job, JobFailed, JobStatus, Queue, Worker
from pgqueue.sql import JOBS_CHANNEL
from tests.factories import count, eventually, lines, running
from tests.jobs import (
    BlockingStuck,
    Echo,
    Flaky,
    Note,
    Sleep,
    Stuck,
    Summarize,
    Summary,
    SyncNote,
)

SLOW_RETRIES = Backoff(base=timedelta(minutes=3))  # a failed attempt is not retried in-test
FAST_RETRIES = Backoff(base=timedelta(milliseconds=20), jitter=0)


async def test_committed_job_runs_once_with_its_payload_intact(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue):
        echo_id = await queue.enqueue(Echo(text='héllo ✓ "quoted" \\ ', numbers=[1, -2, 3]))
        note_id = await queue.enqueue(Note(log_path=str(log)))
        assert await queue.wait_for(echo_id, 10) == {
            "text": 'héllo ✓ "quoted" \\ ',
            "numbers": [1, -2, 3],
            "attempt": 1,
        }
        await queue.wait_for(note_id, 10)
    assert lines(log) == [str(note_id)]
    row = await db.fetchrow(
        "SELECT status::text, attempts, worker_id FROM pgqueue.jobs WHERE id = $1", note_id
    )
    assert (row["status"], row["attempts"]) == ("completed", 1)
    assert row["worker_id"] is not None


async def test_rolled_back_enqueue_never_runs(
    queue: Queue, db: asyncpg.Connection, dsn: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    app = await asyncpg.connect(dsn)

    async def place_order_that_fails() -> None:
        async with app.transaction():
            await queue.enqueue(Note(log_path=str(log)), connection=app)
            raise RuntimeError("order rejected")

    async with running(queue, poll_interval=60):
        with pytest.raises(RuntimeError, match="order rejected"):
            await place_order_that_fails()
        async with app.transaction():
            committed = await queue.enqueue(Note(log_path=str(log)), connection=app)
        await queue.wait_for(committed, 10)
    await app.close()
    assert lines(log) == [str(committed)]
    assert await count(db) == 1


async def test_sqlalchemy_session_enqueue_runs_after_commit(
    queue: Queue, dsn: str, tmp_path: Path
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    log = tmp_path / "runs.log"
    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(dsn)
    )
    async with running(queue, poll_interval=60):
        async with AsyncSession(engine) as session:
            job_id = await queue.enqueue(Note(log_path=str(log)), connection=session)
            await session.commit()
        await queue.wait_for(job_id, 10)
    await engine.dispose()
    assert lines(log) == [str(job_id)]


async def test_delayed_job_runs_at_run_at_without_waiting_for_the_poll(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue, poll_interval=60):
        job_id = await queue.enqueue(Note(log_path=str(log)), delay=timedelta(seconds=1.5))
        await queue.wait_for(job_id, 10)
    early, late = await db.fetchrow(
        "SELECT started_at < run_at, started_at > run_at + interval '1 second'"
        " FROM pgqueue.jobs WHERE id = $1",
        job_id,
    )
    assert (early, late) == (False, False)
    assert lines(log) == [str(job_id)]


async def test_idle_worker_is_woken_by_notify_not_by_its_poll_interval(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue, poll_interval=60):
        for _ in range(5):  # each job is enqueued while the worker sleeps after the previous one
            job_id = await queue.enqueue(Note(log_path=str(log)))
            await queue.wait_for(job_id, 5)  # far below the 60 s poll interval
    assert len(lines(log)) == 5
    assert await count(db, "completed") == 5


async def test_graceful_stop_lets_running_jobs_finish(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    await queue.enqueue_batch([Sleep(seconds=0.5, log_path=str(log)) for _ in range(3)])
    async with running(queue, concurrency=3, shutdown_grace=30) as worker:
        await eventually(lambda: lines(log), until=lambda found: len(found) == 3)
    assert sorted(line.split()[0] for line in lines(log)) == ["end"] * 3 + ["start"] * 3
    assert await count(db, "completed") == 3
    assert await count(db, "running") == 0
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers WHERE id = $1", worker.id) == 0


@pytest.mark.parametrize("yields", [0, 1, 5])
async def test_stop_right_after_run_is_scheduled_stops_that_run(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path, yields: int
) -> None:
    # The way a program runs a worker beside itself: stop() may come before run() has begun
    # (0 yields), or while it is starting up.
    log = tmp_path / "runs.log"
    job_id = await queue.enqueue(Note(log_path=str(log)))
    worker = Worker(queue)
    run = asyncio.create_task(worker.run())
    for _ in range(yields):
        await asyncio.sleep(0)
    await worker.stop()
    await asyncio.wait_for(run, 10)  # used to run on forever

    status = await db.fetchrow(
        "SELECT status::text, attempts FROM pgqueue.jobs WHERE id = $1", job_id
    )
    assert tuple(status) == ("pending", 0)
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers") == 0
    assert lines(log) == []
    # The stop was for that run only: the next one works.
    async with running(queue):
        assert await queue.wait_for(job_id, 10) is None
    assert lines(log) == [str(job_id)]


async def test_stop_after_the_grace_period_releases_unfinished_jobs_to_pending(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    ids = await queue.enqueue_batch([Sleep(seconds=3600, log_path=str(log)) for _ in range(3)])
    async with running(queue, concurrency=2, shutdown_grace=0.2):
        await eventually(lambda: lines(log), until=lambda found: len(found) == 2)
    rows = await db.fetch(
        "SELECT status::text, attempts, worker_id FROM pgqueue.jobs WHERE id = ANY($1)", ids
    )
    assert [(r["status"], r["attempts"], r["worker_id"]) for r in rows] == [
        ("pending", 0, None)
    ] * 3
    assert not any(line.startswith("end") for line in lines(log))


async def test_a_job_released_at_stop_wakes_the_workers_of_its_queue(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    heard: list[str] = []
    await db.add_listener(JOBS_CHANNEL, lambda *notification: heard.append(notification[3]))
    job_id = await queue.enqueue(Sleep(seconds=3600, log_path=str(log)))
    async with running(queue, concurrency=1, shutdown_grace=0):
        await eventually(lambda: lines(log), until=lambda found: len(found) == 1)
        heard.clear()  # the enqueue's own notification

    assert await eventually(lambda: list(heard), until=bool, within=5) == ["tests"]
    assert await db.fetchval("SELECT status::text FROM pgqueue.jobs WHERE id = $1", job_id) == (
        "pending"
    )


async def test_timeout_cancels_the_job_and_records_a_failed_attempt(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue, backoff=SLOW_RETRIES):
        job_id = await queue.enqueue(Stuck())
        record = await eventually(
            lambda: queue.get_job(job_id), until=lambda r: r.attempts == 1 and r.status == "pending"
        )
    assert record.last_error is not None
    assert "timeout" in record.last_error
    assert [(e.attempt, e.type) for e in record.errors] == [(1, "TimeoutError")]
    assert await db.fetchval(
        "SELECT run_at > now() + interval '1 minute' FROM pgqueue.jobs WHERE id = $1", job_id
    )


async def test_sync_job_past_its_timeout_fails_and_frees_its_slot(
    queue: Queue, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue, concurrency=1):
        stuck = await queue.enqueue(BlockingStuck())
        after = await queue.enqueue(SyncNote(log_path=str(log)))
        with pytest.raises(JobFailed, match="timeout"):
            await queue.wait_for(stuck, 10)
        assert await queue.wait_for(after, 10) == "thread"
    assert lines(log) == [str(after)]


async def test_failing_job_is_retried_with_backoff_until_it_succeeds(queue: Queue) -> None:
    async with running(queue, backoff=FAST_RETRIES):
        job_id = await queue.enqueue(Flaky(succeed_on=3))
        assert await queue.wait_for(job_id, 10) == 3
    record = await queue.get_job(job_id)
    assert (record.status, record.attempts) == (JobStatus.COMPLETED, 3)
    assert [(e.attempt, e.type, e.message) for e in record.errors] == [
        (1, "RuntimeError", "attempt 1 fails on purpose"),
        (2, "RuntimeError", "attempt 2 fails on purpose"),
    ]
    assert all("Traceback" in e.traceback for e in record.errors)


async def test_job_failing_every_attempt_ends_failed_and_wait_for_raises(queue: Queue) -> None:
    async with running(queue, backoff=FAST_RETRIES):
        job_id = await queue.enqueue(Flaky(succeed_on=99), max_retries=2)
        with pytest.raises(JobFailed, match="attempt 3 fails on purpose") as raised:
            await queue.wait_for(job_id, 10)
    assert raised.value.job_id == job_id
    record = await queue.get_job(job_id)
    assert (record.status, record.attempts, record.max_attempts) == (JobStatus.FAILED, 3, 3)
    assert [e.attempt for e in record.errors] == [1, 2, 3]
    assert record.finished_at is not None


async def test_result_round_trips_as_its_declared_type(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue):
        job_id = await queue.enqueue(Summarize(values=[1, 2, 3]))
        result = await queue.wait_for(job_id, 10)
    assert result == Summary(total=6, label="3 values")
    stored = await db.fetchval("SELECT result::text FROM pgqueue.jobs WHERE id = $1", job_id)
    assert stored == '{"label": "3 values", "total": 6}'
    assert (
        await db.fetchval("SELECT job_type FROM pgqueue.jobs WHERE id = $1", job_id) == "summarize"
    )


async def test_on_error_hooks_get_the_job_and_exception_and_a_raising_hook_is_harmless(
    queue: Queue,
) -> None:
    seen: list[tuple[str, int, str]] = []

    def broken_hook(job: Job, error: BaseException) -> None:
        raise RuntimeError("the hook itself is broken")

    async def async_hook(job: Job, error: BaseException) -> None:
        seen.append(("async", job.context.attempt, str(error)))

    worker_hooks = [
        broken_hook,
        lambda job, error: seen.append(("sync", job.context.attempt, type(error).__name__)),
        async_hook,
    ]
    worker = Worker(queue, backoff=FAST_RETRIES)
    for hook in worker_hooks:
        worker.on_error(hook)
    task = asyncio.create_task(worker.run())
    job_id = await queue.enqueue(Flaky(succeed_on=2))
    assert await queue.wait_for(job_id, 10) == 2
    await worker.stop()
    await task
    assert seen == [("sync", 1, "RuntimeError"), ("async", 1, "attempt 1 fails on purpose")]


async def test_payload_that_no_longer_validates_fails_at_once(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    bad = await db.fetchval(
        "SELECT pgqueue.enqueue('tests.jobs.Note', '{\"wrong\": 1}', queue => 'tests')"
    )
    async with running(queue):
        with pytest.raises(JobFailed, match="ValidationError"):
            await queue.wait_for(bad, 10)
        good = await queue.enqueue(Note(log_path=str(log)))
        await queue.wait_for(good, 10)
    assert (await queue.get_job(bad)).attempts == 1
    assert lines(log) == [str(good)]


async def test_worker_leaves_job_types_it_does_not_know_untouched(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    unknown = await db.fetchval(
        "SELECT pgqueue.enqueue('not.deployed.Yet', '{}', queue => 'tests')"
    )
    async with running(queue):
        known = await queue.enqueue(Note(log_path=str(tmp_path / "runs.log")))
        await queue.wait_for(known, 10)
    row = await db.fetchrow(
        "SELECT status::text, attempts FROM pgqueue.jobs WHERE id = $1", unknown
    )
    assert (row["status"], row["attempts"]) == ("pending", 0)


async def test_stop_is_clean_after_the_listening_connection_was_killed(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue) as worker:
        killed = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        assert killed == 1
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers WHERE id = $1", worker.id) == 0


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("poll_interval", math.inf, "poll_interval must be a finite number of seconds, got inf"),
        ("poll_interval", math.nan, "poll_interval must be a finite number of seconds, got nan"),
        ("timeout", math.nan, "timeout must be a finite number of seconds, got nan"),
        ("shutdown_grace", 1e300, "shutdown_grace must be at most a century"),
        ("heartbeat_interval", math.inf, "heartbeat_interval must be a finite number"),
        # now() - heartbeat_timeout would leave PostgreSQL's timestamps in every rescue
        ("heartbeat_timeout", timedelta(days=999_999_999), "heartbeat_timeout must be at most"),
        ("blocked_loop_timeout", math.nan, "blocked_loop_timeout must be a finite number"),
        ("concurrency", math.inf, "concurrency must be a whole number of at least 1, got inf"),
        ("concurrency", 0, "concurrency must be a whole number of at least 1, got 0"),
        ("prefetch", math.nan, "prefetch must be a whole number of at least 0, got nan"),
        ("max_retries", math.nan, "max_retries must be an int from 0 to 32766, got nan"),
    ],
)
async def test_worker_refuses_infinite_nan_or_out_of_range_settings(
    queue: Queue, keyword: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Worker(queue, **{keyword: value})  # type: ignore[arg-type]
