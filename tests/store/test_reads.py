"""The read side and operator actions through Queue: get, list, stats, cancel, retry, clear."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from uuid import uuid4

import asyncpg
import pytest

from pgqueue import (
    InvalidQueueName,
    JobCancelled,
    JobFailed,
    JobNotFound,
    JobStatus,
    Queue,
    QueueStats,
    WaitTimeout,
)
from tests.factories import eventually, status_of
from tests.jobs import Echo, Summarize, Summary

ERROR = {
    "attempt": 1,
    "at": "2030-01-01T12:00:00+00:00",
    "worker_id": "00000000-0000-0000-0000-000000000001",
    "type": "RuntimeError",
    "message": "boom",
    "traceback": "Traceback ...",
}


async def set_status(db: asyncpg.Connection, job_id: int, status: str) -> None:
    await db.execute(
        "UPDATE pgqueue.jobs SET status = $2::text::pgqueue.job_status WHERE id = $1",
        job_id,
        status,
    )


async def enqueue_in_states(queue: Queue, db: asyncpg.Connection, *statuses: str) -> list[int]:
    ids = await queue.enqueue_batch([Echo(text=status) for status in statuses])
    for job_id, status in zip(ids, statuses, strict=True):
        await set_status(db, job_id, status)
    return ids


# --- get --------------------------------------------------------------------------------------


async def test_get_job_returns_every_field_of_a_new_job(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="hi", numbers=[4]), priority=3, max_retries=1)

    record = await queue.get_job(job_id)

    created_at = await db.fetchval("SELECT created_at FROM pgqueue.jobs WHERE id = $1", job_id)
    assert record.model_dump() == {
        "id": job_id,
        "queue": "tests",
        "job_type": Echo.job_options.name,
        "payload": {"text": "hi", "numbers": [4]},
        "status": JobStatus.PENDING,
        "priority": 3,
        "attempts": 0,
        "max_attempts": 2,
        "run_at": created_at,
        "created_at": created_at,
        "started_at": None,
        "finished_at": None,
        "result": None,
        "last_error": None,
        "errors": [],
        "worker_id": None,
        "blocked": False,
        "depends_on": None,
        "unique_key": None,
        "schedule_name": None,
        "schedule_tick": None,
        "trace_context": None,
    }


async def test_get_job_returns_result_errors_and_worker_of_a_finished_job(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="x"))
    worker_id = uuid4()
    await db.execute(
        "UPDATE pgqueue.jobs SET status = 'completed', attempts = 2, result = '{\"total\": 3}',"
        " errors = jsonb_build_array($2::jsonb), last_error = 'RuntimeError: boom',"
        " worker_id = $3 WHERE id = $1",
        job_id,
        json.dumps(ERROR),
        worker_id,
    )

    record = await queue.get_job(job_id)

    assert (record.status, record.attempts, record.result) == (
        JobStatus.COMPLETED,
        2,
        {"total": 3},
    )
    assert (record.last_error, record.worker_id) == ("RuntimeError: boom", worker_id)
    [error] = record.errors
    assert (error.attempt, error.type, error.message, error.at.year) == (
        1,
        "RuntimeError",
        "boom",
        2030,
    )


async def test_get_job_of_unknown_id_raises_job_not_found(queue: Queue) -> None:
    with pytest.raises(JobNotFound, match="no job with id 424242") as raised:
        await queue.get_job(424242)

    assert raised.value.job_id == 424242


async def test_get_job_status_follows_the_row(queue: Queue, db: asyncpg.Connection) -> None:
    job_id = await queue.enqueue(Echo(text="x"))
    assert await queue.get_job_status(job_id) is JobStatus.PENDING

    await set_status(db, job_id, "running")

    assert await queue.get_job_status(job_id) is JobStatus.RUNNING


async def test_get_job_status_of_unknown_id_raises_job_not_found(queue: Queue) -> None:
    with pytest.raises(JobNotFound, match="no job with id 424242"):
        await queue.get_job_status(424242)


# --- wait_for -----------------------------------------------------------------------------------


async def test_wait_for_returns_the_result_typed_by_handle(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Summarize(values=[1, 2, 3]))
    await db.execute(
        "UPDATE pgqueue.jobs SET status = 'completed', result = $2::jsonb WHERE id = $1",
        job_id,
        json.dumps({"total": 6, "label": "3 values"}),
    )

    assert await queue.wait_for(job_id, timeout=5) == Summary(total=6, label="3 values")


@pytest.mark.parametrize("seconds", [math.nan, -1.0])
async def test_wait_for_refuses_a_timeout_it_could_never_reach(
    queue: Queue, seconds: float
) -> None:
    job_id = await queue.enqueue(Echo(text="x"))
    with pytest.raises(ValueError, match="timeout must be a number of seconds from 0"):
        await queue.wait_for(job_id, timeout=seconds)


async def test_wait_for_a_failed_job_raises_job_failed_with_its_last_error(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="x"))
    await db.execute(
        "UPDATE pgqueue.jobs SET status = 'failed', last_error = 'RuntimeError: boom'"
        " WHERE id = $1",
        job_id,
    )

    with pytest.raises(JobFailed, match=f"job {job_id} failed: RuntimeError: boom"):
        await queue.wait_for(job_id, timeout=5)


async def test_wait_for_a_cancelled_job_raises_job_cancelled(queue: Queue) -> None:
    job_id = await queue.enqueue(Echo(text="x"))
    await queue.cancel(job_id)

    with pytest.raises(JobCancelled, match=f"job {job_id} was cancelled"):
        await queue.wait_for(job_id, timeout=5)


async def test_wait_for_an_unfinished_job_times_out(queue: Queue) -> None:
    job_id = await queue.enqueue(Echo(text="x"))

    with pytest.raises(WaitTimeout, match=f"job {job_id} is still pending after 0.1s"):
        await queue.wait_for(job_id, timeout=0.1)


# --- list -------------------------------------------------------------------------------------


async def test_list_recent_jobs_is_newest_first_and_limited(queue: Queue) -> None:
    ids = await queue.enqueue_batch([Echo(text=str(n)) for n in range(5)])

    listed = await queue.list_recent_jobs(3)

    assert [record.id for record in listed] == ids[::-1][:3]


async def test_list_recent_jobs_defaults_to_twenty(queue: Queue) -> None:
    await queue.enqueue_batch([Echo(text=str(n)) for n in range(25)])

    assert len(await queue.list_recent_jobs()) == 20


async def test_list_recent_jobs_filters_by_status(queue: Queue, db: asyncpg.Connection) -> None:
    failed_old, _, failed_new, _ = await enqueue_in_states(
        queue, db, "failed", "completed", "failed", "pending"
    )

    by_enum = await queue.list_recent_jobs(status=JobStatus.FAILED)
    by_text = await queue.list_recent_jobs(status="failed")

    assert [record.id for record in by_enum] == [failed_new, failed_old]
    assert by_text == by_enum


async def test_list_recent_jobs_filters_by_queue_and_status_together(
    queue: Queue, db: asyncpg.Connection
) -> None:
    wanted = await queue.enqueue(Echo(text="a"), queue="emails")
    await queue.enqueue(Echo(text="b"), queue="tests")
    completed_email = await queue.enqueue(Echo(text="c"), queue="emails")
    await set_status(db, completed_email, "completed")

    assert [r.id for r in await queue.list_recent_jobs(queue="emails")] == [completed_email, wanted]
    assert [r.id for r in await queue.list_recent_jobs(queue="emails", status="pending")] == [
        wanted
    ]
    assert await queue.list_recent_jobs(queue="nothing-here") == []


async def test_list_recent_jobs_rejects_unknown_status_and_bad_queue(queue: Queue) -> None:
    with pytest.raises(ValueError, match="'done' is not a valid JobStatus"):
        await queue.list_recent_jobs(status="done")
    with pytest.raises(InvalidQueueName):
        await queue.list_recent_jobs(queue="a b")


# --- stats ------------------------------------------------------------------------------------


async def test_stats_counts_each_state_per_queue_and_overall(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await enqueue_in_states(queue, db, "pending", "pending", "running", "completed", "failed")
    await queue.enqueue(Echo(text="later"), delay=timedelta(hours=1))
    emails = await queue.enqueue_batch([Echo(text="e1"), Echo(text="e2")], queue="emails")
    await set_status(db, emails[1], "cancelled")

    tests_stats = await queue.stats("tests")
    email_stats = await queue.stats("emails")
    overall = await queue.stats()

    assert tests_stats == QueueStats(
        queue="tests",
        pending=2,
        scheduled=1,
        running=1,
        completed=1,
        failed=1,
        cancelled=0,
        blocked=0,
    )
    assert email_stats == QueueStats(
        queue="emails",
        pending=1,
        scheduled=0,
        running=0,
        completed=0,
        failed=0,
        cancelled=1,
        blocked=0,
    )
    assert overall == QueueStats(
        queue=None, pending=3, scheduled=1, running=1, completed=1, failed=1, cancelled=1, blocked=0
    )


async def test_stats_of_an_empty_queue_are_all_zero(queue: Queue) -> None:
    assert await queue.stats("empty") == QueueStats(
        queue="empty",
        pending=0,
        scheduled=0,
        running=0,
        completed=0,
        failed=0,
        cancelled=0,
        blocked=0,
    )


# --- cancel -----------------------------------------------------------------------------------


async def test_cancel_of_a_pending_job_cancels_it(queue: Queue, db: asyncpg.Connection) -> None:
    job_id = await queue.enqueue(Echo(text="x"), delay=timedelta(hours=1))

    assert await queue.cancel(job_id) is True

    row = await db.fetchrow(
        "SELECT status::text, finished_at IS NOT NULL AS finished FROM pgqueue.jobs WHERE id = $1",
        job_id,
    )
    assert tuple(row or ()) == ("cancelled", True)


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
async def test_cancel_of_a_finished_job_returns_false_and_changes_nothing(
    queue: Queue, db: asyncpg.Connection, status: str
) -> None:
    [job_id] = await enqueue_in_states(queue, db, status)

    assert await queue.cancel(job_id) is False

    assert await status_of(db, job_id) == status


async def test_cancel_of_a_running_job_cancels_it_and_notifies_its_worker(
    queue: Queue, db: asyncpg.Connection
) -> None:
    [job_id] = await enqueue_in_states(queue, db, "running")
    requests: list[str] = []
    await db.add_listener("pgqueue_cancel", lambda *args: requests.append(args[-1]))

    assert await queue.cancel(job_id) is True

    assert await status_of(db, job_id) == "cancelled"
    assert await eventually(lambda: requests, until=lambda found: found == [str(job_id)])


async def test_cancel_of_an_unknown_job_returns_false(queue: Queue) -> None:
    assert await queue.cancel(424242) is False


# --- retry ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["failed", "cancelled"])
async def test_retry_brings_a_finished_job_back_with_fresh_attempts_and_its_history(
    queue: Queue, db: asyncpg.Connection, status: str
) -> None:
    job_id = await queue.enqueue(Echo(text="x"), max_retries=1)
    await set_status(db, job_id, status)
    await db.execute(
        "UPDATE pgqueue.jobs SET attempts = 2, errors = jsonb_build_array($2::jsonb, $3::jsonb),"
        " last_error = 'RuntimeError: boom', worker_id = $4, finished_at = now() - interval '1 h',"
        " run_at = now() - interval '2 h' WHERE id = $1",
        job_id,
        json.dumps(ERROR),
        json.dumps({**ERROR, "attempt": 2}),
        uuid4(),
    )

    assert await queue.retry(job_id) is True

    record = await queue.get_job(job_id)
    assert (record.status, record.attempts, record.worker_id, record.finished_at) == (
        JobStatus.PENDING,
        0,
        None,
        None,
    )
    assert [error.attempt for error in record.errors] == [1, 2]
    assert await db.fetchval(
        "SELECT run_at > now() - interval '1 min' FROM pgqueue.jobs WHERE id = $1", job_id
    )


@pytest.mark.parametrize("status", ["pending", "running", "completed"])
async def test_retry_of_a_job_that_did_not_fail_returns_false_and_changes_nothing(
    queue: Queue, db: asyncpg.Connection, status: str
) -> None:
    [job_id] = await enqueue_in_states(queue, db, status)
    await db.execute("UPDATE pgqueue.jobs SET attempts = 1 WHERE id = $1", job_id)

    assert await queue.retry(job_id) is False

    row = await db.fetchrow("SELECT status::text, attempts FROM pgqueue.jobs WHERE id = $1", job_id)
    assert tuple(row or ()) == (status, 1)


# --- clear ------------------------------------------------------------------------------------


async def test_clear_of_one_queue_deletes_only_its_pending_jobs(
    queue: Queue, db: asyncpg.Connection
) -> None:
    kept = await enqueue_in_states(queue, db, "running", "completed", "failed", "cancelled")
    await queue.enqueue_batch([Echo(text="a"), Echo(text="b")])
    other_queue = await queue.enqueue(Echo(text="c"), queue="emails")

    assert await queue.clear("tests") == 2

    remaining = await db.fetch("SELECT id FROM pgqueue.jobs ORDER BY id")
    assert [row["id"] for row in remaining] == [*kept, other_queue]


async def test_clear_of_all_queues_deletes_every_pending_job(
    queue: Queue, db: asyncpg.Connection
) -> None:
    kept = await enqueue_in_states(queue, db, "running", "completed")
    await queue.enqueue_batch([Echo(text="a"), Echo(text="b")])
    await queue.enqueue(Echo(text="c"), queue="emails")

    assert await queue.clear() == 3

    remaining = await db.fetch("SELECT id FROM pgqueue.jobs ORDER BY id")
    assert [row["id"] for row in remaining] == kept


async def test_clear_with_nothing_pending_returns_zero(queue: Queue) -> None:
    assert await queue.clear() == 0


async def test_clear_rejects_a_bad_queue_name(queue: Queue, db: asyncpg.Connection) -> None:
    await queue.enqueue(Echo(text="x"))

    with pytest.raises(InvalidQueueName, match="'a b' is invalid"):
        await queue.clear("a b")

    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs") == 1
