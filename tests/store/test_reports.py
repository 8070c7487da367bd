"""The report queries through Queue: keyset pages of jobs with their filters (the latest finished
first for a finished status), a job's relations, throughput per minute, taking failed jobs out
of the dead letter queue, and the indexes the lists use on a large table, in custom and generic
plans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from pgqueue import (
    InvalidQueueName,
    JobLink,
    JobNotFound,
    JobStatus,
    Queue,
    ThroughputMinute,
    WorkerLink,
)
from pgqueue.sql import queries
from tests.factories import eventually, status_of
from tests.jobs import Echo, Note
from tests.store.transitions import complete, fail, start

ECHO = Echo.job_options.name
NOTE = Note.job_options.name
BEYOND_BIGINT = 2**63  # one past pgqueue.jobs.id's largest value


async def db_now(db: asyncpg.Connection) -> datetime:
    now: datetime = await db.fetchval("SELECT now()")
    return now


async def set_row(
    db: asyncpg.Connection,
    job_id: int,
    *,
    status: str | None = None,
    created_at: datetime | None = None,
    finished_at: datetime | None = None,
) -> None:
    """Seed one job row: the columns given are set, the others kept."""
    await db.execute(
        "UPDATE pgqueue.jobs SET status = coalesce($2::text::pgqueue.job_status, status),"
        " created_at = coalesce($3, created_at), finished_at = coalesce($4, finished_at)"
        " WHERE id = $1",
        job_id,
        status,
        created_at,
        finished_at,
    )


async def ids_of(queue: Queue, /, **filters: Any) -> list[int]:
    return [job.id for job in await queue.list_jobs(limit=500, **filters)]


async def all_pages(queue: Queue, /, *, limit: int, **filters: Any) -> list[list[int]]:
    """The ids of every page, following ``before_id`` from the first until a short page."""
    pages: list[list[int]] = []
    before_id = None
    while True:
        page = await queue.list_jobs(limit=limit, before_id=before_id, **filters)
        if page:
            pages.append([job.id for job in page])
        if len(page) < limit:
            return pages
        before_id = page[-1].id


# --- list_jobs: newest enqueued first -------------------------------------------------------------


async def test_list_jobs_pages_by_before_id_cover_every_job_once_newest_first(
    queue: Queue,
) -> None:
    ids = await queue.enqueue_batch([Echo(text=str(n)) for n in range(25)])

    pages = await all_pages(queue, limit=10)

    assert [len(page) for page in pages] == [10, 10, 5]
    assert [job_id for page in pages for job_id in page] == sorted(ids, reverse=True)


async def test_list_jobs_summaries_carry_the_row_and_cut_last_error_to_500_characters(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="x"), priority=4, max_retries=2)
    await db.execute("UPDATE pgqueue.jobs SET last_error = repeat('e', 2000) WHERE id = $1", job_id)

    [summary] = await queue.list_jobs()

    row = await db.fetchrow("SELECT run_at, created_at FROM pgqueue.jobs WHERE id = $1", job_id)
    assert row is not None
    assert summary.model_dump() == {
        "id": job_id,
        "queue": "tests",
        "job_type": ECHO,
        "status": JobStatus.PENDING,
        "priority": 4,
        "attempts": 0,
        "max_attempts": 3,
        "run_at": row["run_at"],
        "created_at": row["created_at"],
        "started_at": None,
        "finished_at": None,
        "last_error": "e" * 500,
        "blocked": False,
    }


async def test_list_jobs_filters_by_queue_status_job_type_and_created_at_alone_or_together(
    queue: Queue, db: asyncpg.Connection
) -> None:
    now = await db_now(db)
    hour = timedelta(hours=1)
    a = await queue.enqueue(Echo(text="a"))
    b = await queue.enqueue(Echo(text="b"), queue="other")
    c = await queue.enqueue(Note(log_path="/dev/null"))
    d = await queue.enqueue(Echo(text="d"))
    await set_row(db, a, created_at=now - 3 * hour)
    await set_row(db, b, created_at=now - 2 * hour)
    await set_row(db, c, created_at=now - hour)
    await set_row(db, d, created_at=now - hour / 2, status="running")

    assert await ids_of(queue) == [d, c, b, a]
    assert await ids_of(queue, queue="other") == [b]
    assert await ids_of(queue, queue="tests") == [d, c, a]
    assert await ids_of(queue, queue="nowhere") == []
    assert await ids_of(queue, status="running") == [d]
    assert await ids_of(queue, status=JobStatus.PENDING) == [c, b, a]
    assert await ids_of(queue, job_type=NOTE) == [c]
    assert await ids_of(queue, job_type=ECHO) == [d, b, a]
    # since is inclusive, until exclusive
    assert await ids_of(queue, since=now - 2 * hour) == [d, c, b]
    assert await ids_of(queue, until=now - hour) == [b, a]
    assert await ids_of(queue, since=now - 2 * hour, until=now - hour) == [b]
    assert await ids_of(queue, queue="tests", job_type=ECHO, status="pending") == [a]
    assert await ids_of(queue, queue="tests", job_type=ECHO, since=now - 2 * hour) == [d]
    assert await ids_of(queue, queue="tests", status="pending", until=now - hour) == [a]
    assert await all_pages(queue, limit=1, queue="tests", job_type=ECHO) == [[d], [a]]


# --- list_jobs of a finished status: the latest to finish first -----------------------------------


async def test_finished_jobs_are_listed_by_finished_at_latest_first_not_by_id(
    queue: Queue, db: asyncpg.Connection
) -> None:
    now = await db_now(db)
    ids = await queue.enqueue_batch([Echo(text=str(n)) for n in range(5)])
    minutes_ago = [1, 5, 2, 0, 4]  # finished out of id order
    for job_id, minutes in zip(ids, minutes_ago, strict=True):
        await set_row(db, job_id, status="completed", finished_at=now - timedelta(minutes=minutes))
    failed, running = await queue.enqueue_batch([Echo(text="failed"), Echo(text="running")])
    await set_row(db, failed, status="failed", finished_at=now)
    await set_row(db, running, status="running")

    listed = await ids_of(queue, status="completed")

    assert listed == [ids[3], ids[0], ids[2], ids[4], ids[1]]
    assert await ids_of(queue, status="failed") == [failed]
    assert await ids_of(queue, status="cancelled") == []


async def test_finished_pages_with_ties_on_finished_at_cover_each_job_once(
    queue: Queue, db: asyncpg.Connection
) -> None:
    now = await db_now(db)
    ids = await queue.enqueue_batch([Echo(text=str(n)) for n in range(12)])
    # Four finishing moments, three jobs each, shuffled across ids: pages of 5 split the ties.
    for n, job_id in enumerate(ids):
        await set_row(db, job_id, status="failed", finished_at=now - timedelta(seconds=n % 4))
    finished_at = {job_id: now - timedelta(seconds=n % 4) for n, job_id in enumerate(ids)}

    pages = await all_pages(queue, limit=5, status="failed")

    assert [len(page) for page in pages] == [5, 5, 2]
    listed = [job_id for page in pages for job_id in page]
    assert listed == sorted(ids, key=lambda job_id: (finished_at[job_id], job_id), reverse=True)


async def test_a_finished_page_holds_when_the_last_job_shown_was_retried_or_pruned(
    queue: Queue, db: asyncpg.Connection
) -> None:
    """The cursor carries the last job's finished_at: what became of that job since (retried,
    failed again later, deleted) cannot send the next page back to the newest."""
    now = await db_now(db)
    ids = await queue.enqueue_batch([Echo(text=str(n)) for n in range(6)])
    for n, job_id in enumerate(ids):  # the higher the id, the later it failed
        await set_row(db, job_id, status="failed", finished_at=now - timedelta(minutes=10 - n))

    first = await queue.list_jobs(status="failed", limit=2)
    assert [job.id for job in first] == [ids[5], ids[4]]
    assert await queue.retry(ids[4])  # the cursor's job is pending now ...
    second = await queue.list_jobs(
        status="failed", limit=2, before_id=ids[4], before_finished_at=first[-1].finished_at
    )
    assert [job.id for job in second] == [ids[3], ids[2]]
    await db.execute("DELETE FROM pgqueue.jobs WHERE id = $1", ids[2])  # ... and this one gone
    third = await queue.list_jobs(
        status="failed", limit=2, before_id=ids[2], before_finished_at=second[-1].finished_at
    )
    assert [job.id for job in third] == [ids[1], ids[0]]


async def test_since_and_until_of_a_finished_status_bound_finished_at_not_created_at(
    queue: Queue, db: asyncpg.Connection
) -> None:
    now = await db_now(db)
    hour = timedelta(hours=1)
    ids = await queue.enqueue_batch([Echo(text=str(n)) for n in range(3)])
    for job_id, hours in zip(ids, [3, 2, 1], strict=True):
        await set_row(
            db,
            job_id,
            status="failed",
            created_at=now - 10 * 24 * hour,
            finished_at=now - hours * hour,
        )
    three_hours_ago, two_hours_ago, one_hour_ago = ids

    assert await ids_of(queue, status="failed", since=now - 2 * hour) == [
        one_hour_ago,
        two_hours_ago,
    ]
    assert await ids_of(queue, status="failed", until=now - 2 * hour) == [three_hours_ago]
    assert await ids_of(queue, status="failed", since=now - 3 * hour, until=now - hour) == [
        two_hours_ago,
        three_hours_ago,
    ]
    # created_at, ten days back, is outside every one of these windows
    assert await ids_of(queue, status="failed", until=now - 5 * 24 * hour) == []


async def test_finished_list_filters_by_queue_and_job_type(
    queue: Queue, db: asyncpg.Connection
) -> None:
    now = await db_now(db)
    echo = await queue.enqueue(Echo(text="x"))
    other = await queue.enqueue(Echo(text="x"), queue="other")
    note = await queue.enqueue(Note(log_path="/dev/null"))
    for job_id in (echo, other, note):
        await set_row(db, job_id, status="cancelled", finished_at=now)

    assert await ids_of(queue, status="cancelled") == [note, other, echo]
    assert await ids_of(queue, status="cancelled", queue="other") == [other]
    assert await ids_of(queue, status="cancelled", job_type=NOTE) == [note]
    assert await ids_of(queue, status="cancelled", queue="tests", job_type=ECHO) == [echo]


# --- list_jobs: what it refuses -------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 501])
async def test_list_jobs_refuses_a_limit_outside_1_to_500(queue: Queue, limit: int) -> None:
    with pytest.raises(ValueError, match=f"limit must be 1 to 500, got {limit}"):
        await queue.list_jobs(limit=limit)


async def test_list_jobs_accepts_the_limits_1_and_500(queue: Queue) -> None:
    await queue.enqueue_batch([Echo(text="a"), Echo(text="b")])

    assert len(await queue.list_jobs(limit=1)) == 1
    assert len(await queue.list_jobs(limit=500)) == 2


async def test_list_jobs_refuses_a_bad_queue_name_and_an_unknown_status(queue: Queue) -> None:
    with pytest.raises(InvalidQueueName, match="'a b'"):
        await queue.list_jobs(queue="a b")
    with pytest.raises(ValueError, match="bogus"):
        await queue.list_jobs(status="bogus")


# --- job_relations --------------------------------------------------------------------------------


async def test_relations_show_a_childs_parents_and_a_parents_blocked_child(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await queue.enqueue(Echo(text="first"), queue="first")
    second = await queue.enqueue(Note(log_path="/dev/null"), queue="second")
    await start(db, second)
    child = await queue.enqueue(Echo(text="child"), depends_on=[first, second])

    of_child = await queue.job_relations(child)
    of_first = await queue.job_relations(first)

    assert of_child.parents == [
        JobLink(id=first, job_type=ECHO, status=JobStatus.PENDING),
        JobLink(id=second, job_type=NOTE, status=JobStatus.RUNNING),
    ]
    assert (of_child.dependents, of_child.worker) == ([], None)
    assert of_first.parents == []
    assert of_first.dependents == [JobLink(id=child, job_type=ECHO, status=JobStatus.PENDING)]
    # Only the jobs still waiting are dependents: once cancelled, the child is not.
    assert await queue.cancel(child) is True
    assert (await queue.job_relations(first)).dependents == []
    assert [p.id for p in (await queue.job_relations(child)).parents] == [first, second]


async def test_relations_show_the_registered_worker_of_a_running_job(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="x"))
    worker_id = await start(db, job_id)
    assert (await queue.job_relations(job_id)).worker is None  # its worker is not registered

    heartbeat_at = await db.fetchval(
        "INSERT INTO pgqueue.workers (id, host, pid, queues, concurrency)"
        " VALUES ($1, 'box', 4242, ARRAY['tests'], 2) RETURNING heartbeat_at",
        worker_id,
    )
    await db.execute(
        "INSERT INTO pgqueue.workers (id, host, pid, queues, concurrency)"
        " VALUES ($1, 'elsewhere', 1, ARRAY['tests'], 2)",
        uuid4(),
    )

    relations = await queue.job_relations(job_id)

    assert relations.worker == WorkerLink(
        id=worker_id, host="box", pid=4242, heartbeat_at=heartbeat_at
    )
    assert (relations.parents, relations.dependents) == ([], [])


@pytest.mark.parametrize("job_id", [424242, BEYOND_BIGINT], ids=["unknown", "beyond-bigint"])
async def test_an_id_that_names_no_job_is_not_found_and_changes_nothing(
    queue: Queue, db: asyncpg.Connection, job_id: int
) -> None:
    kept = await queue.enqueue(Echo(text="kept"))

    with pytest.raises(JobNotFound, match=f"no job with id {job_id}"):
        await queue.job_relations(job_id)
    with pytest.raises(JobNotFound, match=f"no job with id {job_id}"):
        await queue.get_job(job_id)
    with pytest.raises(JobNotFound):
        await queue.get_job_status(job_id)
    assert await queue.cancel(job_id) is False
    assert await queue.retry(job_id) is False
    assert await queue.cancel_failed([job_id]) == []
    assert await status_of(db, kept) == "pending"


# --- throughput -----------------------------------------------------------------------------------

# (queue, status, minutes before the minute the test starts in)
FINISHED = [
    ("tests", "completed", 0),
    ("tests", "cancelled", 0),
    ("tests", "completed", 3),
    ("tests", "completed", 3),
    ("tests", "failed", 3),
    ("other", "completed", 3),
    ("other", "failed", 9),
    ("tests", "completed", 10),  # before the last 10 minutes
    ("other", "failed", 30),
]


async def throughput_in_one_clock_minute(
    queue: Queue, db: asyncpg.Connection, minutes: int
) -> tuple[datetime, list[ThroughputMinute]]:
    """The rows, and the database clock's minute that the query saw (read again if a minute
    ended while it ran)."""

    async def read() -> tuple[datetime, datetime, list[ThroughputMinute]]:
        before = await db.fetchval("SELECT date_trunc('minute', now())")
        rows = await queue.throughput(minutes)
        return before, await db.fetchval("SELECT date_trunc('minute', now())"), rows

    before, _, rows = await eventually(read, until=lambda read: read[0] == read[1])
    return before, rows


async def test_throughput_counts_finished_jobs_per_minute_and_queue_in_the_window(
    queue: Queue, db: asyncpg.Connection
) -> None:
    start_minute = await db.fetchval("SELECT date_trunc('minute', now())")
    for queue_name, status, minutes in FINISHED:
        job_id = await queue.enqueue(Echo(text=status), queue=queue_name)
        finished_at = start_minute - timedelta(minutes=minutes) + timedelta(seconds=1)
        await set_row(db, job_id, status=status, finished_at=finished_at)
    await queue.enqueue(Echo(text="still pending"))

    minute, rows = await throughput_in_one_clock_minute(queue, db, 10)

    # 0 unless the clock entered a new minute since the rows were written
    shift = (minute - start_minute) // timedelta(minutes=1)
    expected = {
        (0, "tests"): (1, 0, 1),
        (3, "other"): (1, 0, 0),
        (3, "tests"): (2, 1, 0),
        (9, "other"): (0, 1, 0),
    }
    assert {
        (row.minutes_ago, row.queue): (row.completed, row.failed, row.cancelled) for row in rows
    } == {(ago + shift, q): counts for (ago, q), counts in expected.items() if ago + shift < 10}
    assert all(row.minute == minute - timedelta(minutes=row.minutes_ago) for row in rows)
    assert [(row.minute, row.queue) for row in rows] == sorted((r.minute, r.queue) for r in rows)


async def test_throughput_of_one_minute_is_the_current_minute_only(
    queue: Queue, db: asyncpg.Connection
) -> None:
    old, new = await queue.enqueue_batch([Echo(text="old"), Echo(text="new")])
    await set_row(db, old, status="completed", finished_at=await db_now(db) - timedelta(minutes=2))
    await db.execute(
        "UPDATE pgqueue.jobs SET status = 'completed', finished_at = now() WHERE id = $1", new
    )

    minute, rows = await throughput_in_one_clock_minute(queue, db, 1)

    finished_minute = await db.fetchval(
        "SELECT date_trunc('minute', finished_at) FROM pgqueue.jobs WHERE id = $1", new
    )
    assert [(row.minutes_ago, row.completed) for row in rows] == (
        [(0, 1)] if finished_minute == minute else []
    )


@pytest.mark.parametrize("minutes", [0, 1441])
async def test_throughput_refuses_a_window_outside_1_to_1440_minutes(
    queue: Queue, minutes: int
) -> None:
    with pytest.raises(ValueError, match=f"minutes must be 1 to 1440, got {minutes}"):
        await queue.throughput(minutes)


async def test_throughput_over_a_whole_day_reaches_its_first_minute(
    queue: Queue, db: asyncpg.Connection
) -> None:
    inside, _outside = await queue.enqueue_batch([Echo(text="in"), Echo(text="out")])
    await db.execute(
        "UPDATE pgqueue.jobs SET status = 'completed', finished_at = date_trunc('minute', now())"
        " - CASE WHEN id = $1 THEN interval '1439 minutes' ELSE interval '1440 minutes' END",
        inside,
    )
    [minute] = await queue.throughput(1440)
    assert (minute.minutes_ago, minute.completed) == (1439, 1)  # the other is a minute too old


# --- cancel_failed --------------------------------------------------------------------------------


async def failed_job(queue: Queue, db: asyncpg.Connection, text: str) -> int:
    """A job that failed for good, as a worker records it."""
    job_id = await queue.enqueue(Echo(text=text))
    worker_id = await start(db, job_id)
    assert await fail(db, job_id, worker_id) == "failed"
    return job_id


async def rows(db: asyncpg.Connection, ids: list[int]) -> dict[int, dict[str, Any]]:
    found = await db.fetch("SELECT * FROM pgqueue.jobs WHERE id = ANY($1::bigint[])", ids)
    return {row["id"]: dict(row) for row in found}


async def test_cancel_failed_moves_only_failed_jobs_to_cancelled_keeping_their_errors(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await failed_job(queue, db, "first")
    second = await failed_job(queue, db, "second")
    completed = await queue.enqueue(Echo(text="completed"))
    assert await complete(db, completed, await start(db, completed)) == [completed]
    pending = await queue.enqueue(Echo(text="pending"))
    ids = [first, second, completed, pending]
    before = await rows(db, ids)

    moved = await queue.cancel_failed([pending, second, completed, first, 424242])

    assert sorted(moved) == [first, second]
    after = await rows(db, ids)
    for job_id in (first, second):
        assert after[job_id]["status"] == "cancelled"
        assert {**after[job_id], "status": "failed"} == before[job_id]  # errors, finished_at ...
        assert json.loads(after[job_id]["errors"])[0]["message"] == "boom"
    assert after[completed] == before[completed]
    assert after[pending] == before[pending]
    assert await queue.cancel_failed([first, second]) == []  # no longer failed


# --- the lists use their indexes on a large table -------------------------------------------------


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


async def explain(
    db: asyncpg.Connection, name: str, *args: object, analyze: bool = False
) -> list[dict[str, Any]]:
    """The plan of a named query for these parameters (a custom plan: the values are known);
    ``analyze`` runs it, adding the rows each node read."""
    options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    explained = await db.fetchval(f"EXPLAIN ({options}) {queries[name].sql}", *args)
    return list(plan_nodes(json.loads(explained)[0]["Plan"]))


async def explain_generic(
    db: asyncpg.Connection, name: str, *args: object, analyze: bool = False
) -> list[dict[str, Any]]:
    """The generic plan of a named query, the one a prepared statement (asyncpg's) may settle
    on after five runs: planned without the parameters' values."""
    query = queries[name]
    types = ", ".join(param.split()[-1] for param in query.params)
    await db.execute(f"PREPARE generic_{name} ({types}) AS {query.sql}")
    await db.execute("SET plan_cache_mode = force_generic_plan")
    # EXECUTE takes no bind parameters: the server quotes the values as literals.
    literals = await db.fetchval(
        "SELECT string_agg(quote_nullable(value), ', ' ORDER BY n)"
        " FROM unnest($1::text[]) WITH ORDINALITY AS t(value, n)",
        [None if arg is None else str(arg) for arg in args],
    )
    options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    try:
        explained = await db.fetchval(f"EXPLAIN ({options}) EXECUTE generic_{name}({literals})")
    finally:
        await db.execute(f"DEALLOCATE generic_{name}; RESET plan_cache_mode")
    return list(plan_nodes(json.loads(explained)[0]["Plan"]))


def index_scans(nodes: list[dict[str, Any]], index: str) -> list[dict[str, Any]]:
    return [node for node in nodes if node.get("Index Name") == index]


@pytest.fixture
async def large_table(db: asyncpg.Connection) -> asyncpg.Connection:
    """50,000 finished jobs, one a second, 1 in 50 failed; analyzed."""
    await db.execute(
        "INSERT INTO pgqueue.jobs (job_type, queue, status, created_at, started_at, finished_at)"
        " SELECT $1, 'tests',"
        " (CASE WHEN n % 50 = 0 THEN 'failed' ELSE 'completed' END)::pgqueue.job_status,"
        " now() - n * interval '1 s' - interval '1 min', now() - n * interval '1 s',"
        " now() - n * interval '1 s' FROM generate_series(1, 50000) AS n",
        ECHO,
    )
    await db.execute("ANALYZE pgqueue.jobs")
    return db


def page_of(status: str | None, before_id: int | None) -> tuple[object, ...]:
    """The parameters of list_jobs: status, queue, job_type, since, until, before_id, limit."""
    return (status, None, None, None, None, before_id, 50)


def finished_page_of(
    status: str, before_id: int | None, before_finished_at: datetime | None = None
) -> tuple[object, ...]:
    """The parameters of list_finished_jobs: list_jobs's, then before_finished_at."""
    return (*page_of(status, before_id), before_finished_at)


@pytest.mark.parametrize("explainer", [explain, explain_generic], ids=["custom", "generic"])
async def test_the_failed_list_walks_the_finished_index(
    large_table: asyncpg.Connection, explainer: Any
) -> None:
    a_failed_id = await large_table.fetchval(
        "SELECT id FROM pgqueue.jobs WHERE status = 'failed' ORDER BY finished_at DESC OFFSET 100"
    )
    finished_at = await large_table.fetchval(
        "SELECT finished_at FROM pgqueue.jobs WHERE id = $1", a_failed_id
    )

    for cursor in ((None, None), (a_failed_id, None), (a_failed_id, finished_at)):
        plan = await explainer(
            large_table, "list_finished_jobs", *finished_page_of("failed", *cursor)
        )
        [scan] = index_scans(plan, "jobs_finished_idx")
        assert "status" in scan["Index Cond"], (cursor, scan)
        assert not [node for node in plan if node["Node Type"] == "Seq Scan"], (cursor, plan)


@pytest.mark.parametrize("explainer", [explain, explain_generic], ids=["custom", "generic"])
async def test_a_page_of_jobs_after_before_id_is_an_index_condition_on_the_primary_key(
    large_table: asyncpg.Connection, explainer: Any
) -> None:
    plan = await explainer(large_table, "list_jobs", *page_of(None, 25000))

    [scan] = index_scans(plan, "jobs_pkey")
    assert (scan["Node Type"], scan["Scan Direction"]) == ("Index Scan", "Backward"), scan
    assert scan["Index Cond"].startswith("(id <"), scan
    assert not [node for node in plan if node["Node Type"] == "Seq Scan"], plan


async def test_the_generic_plan_is_planned_without_the_parameters(
    large_table: asyncpg.Connection,
) -> None:
    plan = await explain_generic(large_table, "list_jobs", *page_of(None, 25000))

    [scan] = index_scans(plan, "jobs_pkey")
    assert "$6" in scan["Index Cond"], scan  # the bound is a parameter, not the value 25000


@pytest.mark.parametrize("explainer", [explain, explain_generic], ids=["custom", "generic"])
@pytest.mark.parametrize("status", ["completed", "failed"])
async def test_a_finished_page_reads_one_page_of_the_index_however_deep(
    large_table: asyncpg.Connection, explainer: Any, status: str
) -> None:
    # The middle of the list: a keyset page must not read the rows before it.
    middle = await large_table.fetchval(
        "SELECT id FROM pgqueue.jobs WHERE status = $1::text::pgqueue.job_status"
        " ORDER BY finished_at DESC, id DESC OFFSET (SELECT count(*) / 2 FROM pgqueue.jobs"
        " WHERE status = $1::text::pgqueue.job_status) LIMIT 1",
        status,
    )

    finished_at = await large_table.fetchval(
        "SELECT finished_at FROM pgqueue.jobs WHERE id = $1", middle
    )

    for cursor in ((None, None), (middle, None), (middle, finished_at)):
        plan = await explainer(
            large_table, "list_finished_jobs", *finished_page_of(status, *cursor), analyze=True
        )
        [scan] = index_scans(plan, "jobs_finished_idx")
        # A page of 50, and the next row (which shows that the page's last moment has ended).
        assert scan["Actual Rows"] <= 51, (cursor, scan)
        [limit] = [node for node in plan if node["Node Type"] == "Limit"]
        assert limit["Actual Rows"] == 50


async def test_the_queue_summary_reads_no_finished_row_but_the_failed(
    large_table: asyncpg.Connection, queue: Queue
) -> None:
    """queue_summary's cost follows the unfinished and failed jobs: each of its parts is an
    index scan, and together they read the 1,000 failed rows and one entry per queue with waiting
    jobs, never the 49,000 completed. (pgqueue.waiting_jobs counts the waiting ones, through
    index entries too: tests/store/test_backlog.py.)"""
    for _ in range(2):
        await queue.enqueue(Echo(text="due"))
    await queue.enqueue(Echo(text="later"), delay=3600)

    plan = await explain(large_table, "queue_summary", analyze=True)

    seq_scans = [node["Relation Name"] for node in plan if node["Node Type"] == "Seq Scan"]
    assert "jobs" not in seq_scans, seq_scans  # (the queues table is scanned: it is tiny)
    scans = [node for node in plan if "Index Name" in node]
    # Either index of the claimable jobs finds the queues that have some.
    claimable = {"jobs_claimable_idx": "claimable", "jobs_claimable_by_type_idx": "claimable"}
    assert {claimable.get(node["Index Name"], node["Index Name"]) for node in scans} == {
        "claimable",
        "jobs_waiting_idx",
        "jobs_running_idx",
        "jobs_finished_idx",
    }
    assert sum(node["Actual Rows"] for node in scans) == 1000 + 1
    [tests] = await queue.queue_summary()
    assert (tests.queue, tests.pending, tests.scheduled, tests.failed) == ("tests", 2, 1, 1000)
