"""Issue 3 in one worker process: how exceptions decide, where retry settings come from,
snoozes, cancelling running jobs, exactly-once effects, rescue, and the schema check."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from pgqueue import Backoff, Job, JobCancelled, JobFailed, Queue, SchemaOutdated, Worker
from pgqueue.migrate import downgrade
from pgqueue.sql import SCHEMA_REVISION
from tests.factories import eventually, running, status_of
from tests.jobs import (
    AlwaysFails,
    Flaky,
    GivesUpOnValueError,
    Note,
    Permanent,
    RaisesBaseException,
    RetriesOnlyConnectionErrors,
    ReturnsAsGiven,
    Sleep,
    Snoozer,
    StrayCancel,
    TransactionalWrite,
    TransactionalWrongResult,
    WaitingTransactionalWrite,
)

FAST = Backoff(base=timedelta(milliseconds=10), jitter=0)


async def attempts_and_status(db: asyncpg.Connection, job_id: int) -> tuple[int, str]:
    row = await db.fetchrow("SELECT attempts, status::text FROM pgqueue.jobs WHERE id = $1", job_id)
    assert row is not None
    return row["attempts"], row["status"]


# --- exceptions decide ----------------------------------------------------------------------


async def test_permanent_error_fails_at_once_despite_retries_left(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue, backoff=FAST):
        job_id = await queue.enqueue(Permanent())
        with pytest.raises(JobFailed, match="PermanentError: the card number is invalid"):
            await queue.wait_for(job_id, 10)
    assert await attempts_and_status(db, job_id) == (1, "failed")


@pytest.mark.parametrize(
    ("job", "outcome"),
    [
        (GivesUpOnValueError(error="value"), (1, "failed")),  # give_up_on: at once
        (GivesUpOnValueError(error="runtime"), (6, "failed")),  # anything else: retried
        (RetriesOnlyConnectionErrors(error="connection"), (6, "failed")),  # retry_on: retried
        (RetriesOnlyConnectionErrors(error="key"), (1, "failed")),  # not named: at once
    ],
    ids=["give_up_on", "not_give_up_on", "retry_on", "not_retry_on"],
)
async def test_retry_on_and_give_up_on_decide_which_errors_are_retried(
    queue: Queue, db: asyncpg.Connection, job: Job, outcome: tuple[int, str]
) -> None:
    async with running(queue, backoff=FAST):
        job_id = await queue.enqueue(job)
        with pytest.raises(JobFailed):
            await queue.wait_for(job_id, 20)
    assert await attempts_and_status(db, job_id) == outcome


async def test_retry_snoozes_without_counting_an_attempt_or_an_error(
    queue: Queue, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue):
        job_id = await queue.enqueue(Snoozer(snoozes=2, log_path=str(log)))
        assert await queue.wait_for(job_id, 10) == "done"
    record = await queue.get_job(job_id)
    assert (record.attempts, record.errors, record.last_error) == (1, [], None)
    assert log.read_text().splitlines() == ["run", "run", "run"]


async def test_stray_cancelled_error_from_a_handler_is_a_failure_not_a_stuck_job(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    async with running(queue):
        job_id = await queue.enqueue(StrayCancel())
        with pytest.raises(JobFailed, match="CancelledError"):
            await queue.wait_for(job_id, 10)
        after = await queue.enqueue(Note(log_path=str(tmp_path / "runs.log")))
        await queue.wait_for(after, 10)  # the worker carries on
    assert await attempts_and_status(db, job_id) == (1, "failed")


async def test_hooks_are_told_whether_the_job_will_be_retried(queue: Queue) -> None:
    seen: list[tuple[int, bool | None]] = []
    worker = Worker(queue, backoff=FAST)
    worker.on_error(lambda job, error: seen.append((job.context.attempt, job.context.will_retry)))
    task = asyncio.create_task(worker.run())
    job_id = await queue.enqueue(AlwaysFails(), max_retries=2)
    with pytest.raises(JobFailed):
        await queue.wait_for(job_id, 10)
    await worker.stop()
    await task
    assert seen == [(1, True), (2, True), (3, False)]


# --- where retry settings come from ---------------------------------------------------------


@pytest.mark.parametrize(
    ("enqueue", "worker_max_retries", "attempts"),
    [
        (lambda q, job: q.enqueue(job), 1, 2),  # the worker default
        (lambda q, job: q.enqueue(job, max_retries=0), 5, 1),  # enqueue keyword over worker
        (lambda q, job: q.dispatch(job, max_retries=4).with_max_retries(2), 5, 3),  # builder
        (lambda q, job: q.enqueue(Flaky(succeed_on=99)), 5, 4),  # class keyword (3 retries)
    ],
    ids=["worker", "enqueue", "builder", "class"],
)
async def test_max_retries_comes_from_the_most_specific_place(
    queue: Queue,
    db: asyncpg.Connection,
    enqueue: Callable[[Queue, Job], Awaitable[int]],
    worker_max_retries: int,
    attempts: int,
) -> None:
    async with running(queue, backoff=FAST, max_retries=worker_max_retries):
        job_id = await enqueue(queue, AlwaysFails())
        with pytest.raises(JobFailed):
            await queue.wait_for(job_id, 20)
    assert await attempts_and_status(db, job_id) == (attempts, "failed")


async def test_enqueued_backoff_schedules_the_retry_through_run_at(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue, backoff=Backoff(base=timedelta(milliseconds=1), jitter=0)):
        job_id = await queue.enqueue(AlwaysFails(), backoff=timedelta(minutes=2))
        await eventually(
            lambda: attempts_and_status(db, job_id), until=lambda r: r == (1, "pending")
        )
    retry_in = await db.fetchval(
        "SELECT extract(epoch FROM run_at - now()) FROM pgqueue.jobs WHERE id = $1", job_id
    )
    assert 100 < retry_in <= 120  # the enqueue's 2 minutes (minus jitter), not the worker's 1 ms


# --- the dead letter queue ------------------------------------------------------------------


async def test_retry_failed_brings_back_only_the_failed_jobs_asked_for(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first, second, permanent = await queue.enqueue_batch(
        [AlwaysFails(), AlwaysFails(), Permanent()], max_retries=0
    )
    other_queue = await queue.enqueue(AlwaysFails(), queue="other", max_retries=0)
    await db.execute("UPDATE pgqueue.jobs SET status = 'failed', attempts = 1")

    assert await queue.retry_failed(job_type=AlwaysFails.job_options.name, queue="tests") == 2
    assert [await attempts_and_status(db, i) for i in (first, second, permanent, other_queue)] == [
        (0, "pending"),
        (0, "pending"),
        (1, "failed"),
        (1, "failed"),  # only the filtered ones
    ]
    assert await queue.retry_failed() == 2  # then everything else that failed
    assert await queue.retry_failed() == 0
    assert await attempts_and_status(db, other_queue) == (0, "pending")


# --- cancelling a running job ---------------------------------------------------------------


async def test_cancelling_a_running_job_stops_its_task_and_it_ends_cancelled(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue):
        job_id = await queue.enqueue(Sleep(seconds=3600, log_path=str(log)))
        await eventually(lambda: log.read_text() if log.exists() else "", until=bool)
        assert await queue.cancel(job_id) is True
        with pytest.raises(JobCancelled):
            await queue.wait_for(job_id, 10)
        next_job = await queue.enqueue(Note(log_path=str(tmp_path / "next.log")))
        await queue.wait_for(next_job, 10)
        await eventually(
            lambda: db.fetchval("SELECT count(*) FROM pgqueue.jobs WHERE status = 'running'"),
            until=lambda n: n == 0,
        )
    assert await status_of(db, job_id) == "cancelled"
    assert log.read_text().splitlines() == [f"start {job_id}"]  # stopped before its end


# --- the result is checked against handle()'s annotation ------------------------------------

NOT_AN_INT = (
    "ReturnsAsGiven.handle() is declared to return int but returned 'x' (str): Input should be "
    "a valid integer, unable to parse string as an integer"
)


async def failure_record(db: asyncpg.Connection, job_id: int) -> tuple[Any, ...]:
    row = await db.fetchrow(
        "SELECT status::text, attempts, result, last_error,"
        " array(SELECT e->>'type' FROM jsonb_array_elements(errors) AS e) AS types,"
        " array(SELECT e->>'message' FROM jsonb_array_elements(errors) AS e) AS messages"
        " FROM pgqueue.jobs WHERE id = $1",
        job_id,
    )
    assert row is not None
    return tuple(row)


async def test_a_result_its_annotation_does_not_allow_fails_the_attempt_and_is_retried(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue, backoff=FAST):
        wrong = await queue.enqueue(ReturnsAsGiven(value="x"))
        coerced = await queue.enqueue(ReturnsAsGiven(value="5"))
        with pytest.raises(JobFailed, match=r"InvalidResult: ReturnsAsGiven\.handle"):
            await queue.wait_for(wrong, 10)
        assert await queue.wait_for(coerced, 10) == 5  # validated as wait_for() loads it

    assert await failure_record(db, wrong) == (
        "failed",
        2,  # max_retries=1: retried once, like any other failure
        None,
        f"InvalidResult: {NOT_AN_INT}",
        ["InvalidResult", "InvalidResult"],
        [NOT_AN_INT, NOT_AN_INT],
    )
    assert await db.fetchval("SELECT result FROM pgqueue.jobs WHERE id = $1", coerced) == "5"


async def test_a_result_its_annotation_does_not_allow_rolls_back_the_jobs_transaction(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await db.execute("CREATE TABLE receipts (order_id int, attempt int)")
    async with running(queue):
        job_id = await queue.enqueue(TransactionalWrongResult(order_id=3))
        with pytest.raises(JobFailed):
            await queue.wait_for(job_id, 10)

    message = (
        "TransactionalWrongResult.handle() is declared to return int but returned 'receipt for "
        "3' (str): Input should be a valid integer, unable to parse string as an integer"
    )
    assert await failure_record(db, job_id) == (
        "failed",
        1,
        None,
        f"InvalidResult: {message}",
        ["InvalidResult"],
        [message],
    )
    assert await db.fetchval("SELECT count(*) FROM receipts") == 0  # its write rolled back


# --- exactly-once effects -------------------------------------------------------------------


async def test_transaction_completes_the_job_with_its_writes_or_neither_happens(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await db.execute("CREATE TABLE receipts (order_id int, attempt int)")
    async with running(queue, backoff=FAST):
        clean = await queue.enqueue(TransactionalWrite(order_id=1))
        crashed = await queue.enqueue(TransactionalWrite(order_id=2, fail_in_transaction=True))
        assert await queue.wait_for(clean, 10) == "receipt for 1"
        assert await queue.wait_for(crashed, 10) == "receipt for 2"
    rows = await db.fetch("SELECT order_id, attempt FROM receipts ORDER BY order_id")
    assert [tuple(r) for r in rows] == [(1, 1), (2, 2)]  # the crashed attempt wrote nothing
    assert await attempts_and_status(db, crashed) == (2, "completed")


async def test_transaction_of_a_job_that_lost_its_claim_meanwhile_rolls_back(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    await db.execute("CREATE TABLE receipts (order_id int, attempt int)")
    log, release = tmp_path / "runs.log", tmp_path / "release"
    async with running(queue, heartbeat_interval=0.05, heartbeat_timeout=1):
        job_id = await queue.enqueue(
            WaitingTransactionalWrite(order_id=7, log_path=str(log), release_path=str(release))
        )
        await eventually(lambda: log.exists(), until=bool)
        # The row is no longer this worker's (as if another rescued it); no NOTIFY is sent.
        await db.execute(
            "UPDATE pgqueue.jobs SET worker_id = gen_random_uuid() WHERE id = $1", job_id
        )
        release.touch()
        await eventually(lambda: queue.get_job(job_id), until=lambda r: r.last_error is not None)
    assert await db.fetchval("SELECT count(*) FROM receipts") == 0  # rolled back with the claim
    record = await queue.get_job(job_id)  # the worker's own failure write was fenced out; the
    assert record.status == "failed"  # rescue decided: no live worker held it, no retries left
    assert [e.type for e in record.errors] == ["WorkerLost"]


# --- crashed workers and the schema ---------------------------------------------------------


async def test_rescue_returns_a_dead_workers_jobs_and_fails_those_out_of_attempts(
    queue: Queue, db: asyncpg.Connection
) -> None:
    dead = uuid4()
    await db.execute(
        "INSERT INTO pgqueue.workers (id, host, pid, queues, concurrency, heartbeat_at)"
        " VALUES ($1, 'gone', 1, '{tests}', 1, now() - interval '1 hour')",
        dead,
    )
    retried, exhausted = await queue.enqueue_batch([AlwaysFails(), AlwaysFails()], max_retries=1)
    await db.execute(
        "UPDATE pgqueue.jobs SET status = 'running', worker_id = $1,"
        " attempts = CASE WHEN id = $2 THEN 1 ELSE 2 END",
        dead,
        retried,
    )
    async with running(queue, heartbeat_interval=0.05, heartbeat_timeout=1, backoff=FAST):
        await eventually(lambda: status_of(db, exhausted), until=lambda s: s == "failed")
        await eventually(
            lambda: attempts_and_status(db, retried), until=lambda r: r[1] != "running"
        )
    record = await queue.get_job(exhausted)
    assert [(e.type, e.worker_id) for e in record.errors] == [("WorkerLost", dead)]
    assert record.last_error is not None
    assert str(dead) in record.last_error
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers WHERE id = $1", dead) == 0


async def test_worker_refuses_a_schema_older_than_the_code(queue: Queue, dsn: str) -> None:
    await downgrade(dsn, "0001")
    needs = f"at revision 0001 but this pgqueue needs {SCHEMA_REVISION}"
    with pytest.raises(SchemaOutdated, match=needs):
        await Worker(queue).run()
    with pytest.raises(SchemaOutdated, match="run `pgqueue migrate`"):
        await Queue.connect(dsn)


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
@pytest.mark.parametrize("in_thread", [False, True], ids=["async", "thread"])
async def test_base_exceptions_from_handlers_fail_the_job_and_spare_the_worker(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path, kind: str, in_thread: bool
) -> None:
    async with running(queue):
        job_id = await queue.enqueue(RaisesBaseException(kind=kind, in_thread=in_thread))
        with pytest.raises(JobFailed, match=kind):
            await queue.wait_for(job_id, 10)
        after = await queue.enqueue(Note(log_path=str(tmp_path / "runs.log")))
        await queue.wait_for(after, 10)
    assert await attempts_and_status(db, job_id) == (1, "failed")
