"""Dependencies through an in-process Worker: a dependent runs after its parents with their
results typed by each parent's handle(), a released dependent wakes an idle worker, a failed or
cancelled parent cancels the rest of its chain, and parents finished by two workers at once
release their dependent exactly once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from pgqueue import Backoff, JobCancelled, JobFailed, JobStatus, Queue
from pgqueue.registry import registry
from tests.factories import eventually, lines, running
from tests.jobs import (
    Echo,
    Flaky,
    Note,
    Permanent,
    ShowParent,
    ShowParents,
    SleepUntilCancelled,
    Summarize,
    Summary,
    SyncShowParent,
)

FAST_RETRIES = Backoff(base=timedelta(milliseconds=20), jitter=0)


async def started_after_parents_finished(db: asyncpg.Connection, job_id: int) -> bool:
    return bool(
        await db.fetchval(
            "SELECT c.started_at >= max(p.finished_at)"
            " FROM pgqueue.jobs AS c JOIN pgqueue.jobs AS p ON p.id = ANY(c.depends_on)"
            " WHERE c.id = $1 GROUP BY c.started_at",
            job_id,
        )
    )


async def test_chained_job_gets_its_parents_pydantic_result(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue):
        parent, child = await queue.chain(Summarize(values=[1, 2, 3]), ShowParent())
        shown = await queue.wait_for(child, 10)

    assert shown == repr(Summary(total=6, label="3 values"))  # a Summary, not a dict
    assert (await queue.get_job(parent)).status is JobStatus.COMPLETED
    assert await started_after_parents_finished(db, child)


async def test_sync_handler_gets_the_result_of_a_parent_that_needed_retries(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue, backoff=FAST_RETRIES):
        parent, child = await queue.chain(Flaky(succeed_on=3), SyncShowParent())
        shown = await queue.wait_for(child, 10)

    assert shown == "3"  # Flaky.handle() -> int
    assert (await queue.get_job(parent)).attempts == 3
    assert await started_after_parents_finished(db, child)


async def test_group_then_gets_every_parents_result_typed_by_its_class(
    queue: Queue, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue, concurrency=3):
        summary, flaky, note, child = await queue.group(
            [Summarize(values=[4]), Flaky(succeed_on=1), Note(log_path=str(log))]
        ).then(ShowParents())
        shown = await queue.wait_for(child, 10)

    assert shown == [
        (summary, repr(Summary(total=4, label="1 values"))),
        (flaky, "1"),  # Flaky.handle() -> int
        (note, "None"),  # Note.handle() -> None
    ]
    assert lines(log) == [str(note)]


async def test_run_anyway_job_runs_after_a_failed_parent_and_gets_none_for_it(
    queue: Queue,
) -> None:
    async with running(queue):
        failed, summary, child = await queue.group([Permanent(), Summarize(values=[2, 5])]).then(
            ShowParents(), run_anyway=True
        )
        shown = await queue.wait_for(child, 10)

    assert shown == [(failed, "None"), (summary, repr(Summary(total=7, label="2 values")))]
    assert (await queue.get_job(failed)).status is JobStatus.FAILED


async def test_parent_result_of_a_job_with_two_parents_fails_it_naming_parent_results(
    queue: Queue,
) -> None:
    async with running(queue):
        *_, child = await queue.group([Echo(text="a"), Echo(text="b")]).then(ShowParent())
        with pytest.raises(JobFailed, match=f"LookupError: job {child} has 2 parents"):
            await queue.wait_for(child, 10)

    assert "read parent_results" in str((await queue.get_job(child)).last_error)


async def test_permanent_failure_cancels_the_rest_of_the_chain_and_none_of_it_runs(
    queue: Queue, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue):
        first, second, third = await queue.chain(
            Permanent(), Note(log_path=str(log)), Note(log_path=str(log))
        )
        with pytest.raises(JobFailed, match="the card number is invalid"):
            await queue.wait_for(first, 10)
        for job_id in (second, third):
            with pytest.raises(JobCancelled):
                await queue.wait_for(job_id, 10)
        after = await queue.enqueue(Note(log_path=str(log)))  # the worker goes on working
        await queue.wait_for(after, 10)

    assert lines(log) == [str(after)]
    second_record, third_record = await queue.get_job(second), await queue.get_job(third)
    assert (second_record.last_error, second_record.attempts) == (f"parent job {first} failed", 0)
    assert (third_record.last_error, third_record.attempts) == (
        f"parent job {second} was cancelled",
        0,
    )


async def test_cancelling_a_running_parent_stops_it_and_cancels_its_dependent(
    queue: Queue, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    async with running(queue):
        parent, child = await queue.chain(
            SleepUntilCancelled(log_path=str(log)), Note(log_path=str(tmp_path / "child.log"))
        )
        await eventually(lambda: lines(log), until=lambda found: found == ["start"])
        assert await queue.cancel(parent) is True
        await eventually(lambda: lines(log), until=lambda found: found == ["start", "cancelled"])
        with pytest.raises(JobCancelled):
            await queue.wait_for(child, 10)

    assert (await queue.get_job(child)).last_error == f"parent job {parent} was cancelled"
    assert lines(tmp_path / "child.log") == []


async def test_released_dependent_wakes_an_idle_worker_without_waiting_for_its_poll(
    queue: Queue, db: asyncpg.Connection
) -> None:
    # The parent is in a queue no worker serves: the test claims and completes it itself, so
    # only the release's NOTIFY can wake the worker before its 60 s poll.
    parent = await queue.enqueue(Echo(text="parent"), queue="elsewhere")
    async with running(queue, queues=["tests"], poll_interval=60):
        child = await queue.enqueue(Echo(text="child"), depends_on=[parent])
        worker_id = uuid4()
        claimed = await db.fetch(
            "SELECT id FROM pgqueue.claim_jobs(ARRAY['elsewhere'], $1, $2, 1)",
            registry.names(),
            worker_id,
        )
        assert [row["id"] for row in claimed] == [parent]
        assert await db.fetch(
            "SELECT pgqueue.complete_jobs(ARRAY[$1::bigint], ARRAY[1], ARRAY[NULL::jsonb], $2)",
            parent,
            worker_id,
        )
        assert await queue.wait_for(child, 5) == {"text": "child", "numbers": [], "attempt": 1}


async def test_two_workers_finishing_the_parents_run_their_dependent_exactly_once(
    queue: Queue, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    children = []
    async with running(queue, concurrency=4), running(queue, concurrency=4):
        for round_ in range(5):
            *_, child = await queue.group([Echo(text=f"{round_}.{n}") for n in range(12)]).then(
                Note(log_path=str(log))
            )
            children.append(child)
        for child in children:
            await queue.wait_for(child, 10)

    assert sorted(lines(log)) == sorted(str(child) for child in children)


async def test_dependent_enqueued_while_its_parent_completes_still_runs(queue: Queue) -> None:
    async with running(queue):
        for n in range(20):
            parent = await queue.enqueue(Echo(text=f"parent {n}"))
            # The worker picks the parent up at once: this races with its completion.
            child = await queue.enqueue(Echo(text=f"child {n}"), depends_on=[parent])
            assert (await queue.wait_for(child, 10))["text"] == f"child {n}"
