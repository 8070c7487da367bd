"""Enqueueing through Queue: inside the caller's transaction (asyncpg connection or pool
connection, SQLAlchemy async or sync session or connection), the NOTIFY at commit, options stored
as given, and bad input rejected with nothing written."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from pgqueue import InvalidJob, InvalidQueueName, Job, Queue
from pgqueue.errors import UnregisteredJob
from tests.factories import count, delivered, notifications
from tests.jobs import Echo, Flaky, Note, QueueOrderProbe, Summarize


class Draft(Job):
    """A Job subclass without handle(): never registered, so it cannot be enqueued."""

    text: str


class RolledBack(Exception):
    """Raised inside a transaction to make it roll back."""


# Each yields a connection of one kind inside a transaction, committed at the end of the block
# and rolled back if the block raises: every kind of connection= that pgqueue accepts.


@contextlib.asynccontextmanager
async def asyncpg_connection(dsn: str) -> AsyncIterator[object]:
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            yield connection
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def asyncpg_pool_connection(dsn: str) -> AsyncIterator[object]:
    async with (
        asyncpg.create_pool(dsn, min_size=1, max_size=1) as pool,
        pool.acquire() as connection,
        connection.transaction(),
    ):
        yield connection


def async_engine(dsn: str) -> AsyncEngine:
    return create_async_engine("postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(dsn))


def sync_engine(dsn: str) -> Engine:
    return create_engine(make_url(dsn).set(drivername="postgresql+psycopg"))


@contextlib.asynccontextmanager
async def sqlalchemy_async_session(dsn: str) -> AsyncIterator[object]:
    engine = async_engine(dsn)
    try:
        async with AsyncSession(engine) as session, session.begin():
            yield session
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def sqlalchemy_async_connection(dsn: str) -> AsyncIterator[object]:
    engine = async_engine(dsn)
    try:
        async with engine.begin() as connection:
            yield connection
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def sqlalchemy_sync_session(dsn: str) -> AsyncIterator[object]:
    engine = sync_engine(dsn)
    try:
        with Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()


@contextlib.asynccontextmanager
async def sqlalchemy_sync_connection(dsn: str) -> AsyncIterator[object]:
    engine = sync_engine(dsn)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


TRANSACTIONS: dict[str, Callable[[str], contextlib.AbstractAsyncContextManager[object]]] = {
    "asyncpg": asyncpg_connection,
    "asyncpg-pool": asyncpg_pool_connection,
    "sqlalchemy-async-session": sqlalchemy_async_session,
    "sqlalchemy-async-connection": sqlalchemy_async_connection,
    "sqlalchemy-sync-session": sqlalchemy_sync_session,
    "sqlalchemy-sync-connection": sqlalchemy_sync_connection,
}
DRIVERS = list(TRANSACTIONS)


def transaction(driver: str, dsn: str) -> contextlib.AbstractAsyncContextManager[object]:
    return TRANSACTIONS[driver](dsn)


async def in_rolled_back_transaction(
    driver: str, dsn: str, work: Callable[[object], Awaitable[object]]
) -> None:
    """Run ``work`` on a connection of ``driver`` in a transaction that then raises."""
    with pytest.raises(RolledBack):  # noqa: PT012 - the raise is what rolls the block back
        async with transaction(driver, dsn) as connection:
            await work(connection)
            raise RolledBack


async def payloads(db: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT payload FROM pgqueue.jobs ORDER BY id")
    return [json.loads(row["payload"]) for row in rows]


# --- the caller's transaction decides -----------------------------------------------------------


async def test_enqueue_without_connection_commits_at_once(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="héllo ✓", numbers=[1, 2, 3]))

    row = await db.fetchrow("SELECT id, job_type, queue, payload FROM pgqueue.jobs")
    assert row is not None
    assert (row["id"], row["job_type"], row["queue"]) == (job_id, Echo.job_options.name, "tests")
    assert json.loads(row["payload"]) == {"text": "héllo ✓", "numbers": [1, 2, 3]}


@pytest.mark.parametrize("driver", DRIVERS)
async def test_enqueue_commits_with_the_callers_transaction(
    queue: Queue, db: asyncpg.Connection, dsn: str, driver: str
) -> None:
    async with transaction(driver, dsn) as connection:
        job_id = await queue.enqueue(Echo(text="in tx"), connection=connection)
        assert await count(db) == 0  # not visible to others before the caller commits

    assert await db.fetchval("SELECT id FROM pgqueue.jobs") == job_id
    assert await payloads(db) == [{"text": "in tx", "numbers": []}]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_enqueue_rolls_back_with_the_callers_transaction(
    queue: Queue, db: asyncpg.Connection, dsn: str, driver: str
) -> None:
    await in_rolled_back_transaction(
        driver, dsn, lambda connection: queue.enqueue(Echo(text="in tx"), connection=connection)
    )

    assert await count(db) == 0


@pytest.mark.parametrize("driver", DRIVERS)
async def test_enqueue_by_name_commits_with_the_callers_transaction(
    queue: Queue, db: asyncpg.Connection, dsn: str, driver: str
) -> None:
    async with transaction(driver, dsn) as connection:
        enqueued = await queue.enqueue_by_name(
            "tests.jobs.Echo", {"text": "in tx"}, connection=connection
        )
        assert await count(db) == 0  # not visible to others before the caller commits

    assert await db.fetchval("SELECT id FROM pgqueue.jobs") == enqueued
    assert await payloads(db) == [{"text": "in tx", "numbers": []}]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_enqueue_by_name_rolls_back_with_the_callers_transaction(
    queue: Queue, db: asyncpg.Connection, dsn: str, driver: str
) -> None:
    await in_rolled_back_transaction(
        driver,
        dsn,
        lambda connection: queue.enqueue_by_name("elsewhere.Job", {}, connection=connection),
    )

    assert await count(db) == 0


@pytest.mark.parametrize("driver", DRIVERS)
async def test_enqueue_batch_commits_with_the_callers_transaction(
    queue: Queue, db: asyncpg.Connection, dsn: str, driver: str
) -> None:
    async with transaction(driver, dsn) as connection:
        ids = await queue.enqueue_batch(
            [Echo(text="a"), Echo(text="b", numbers=[2])], connection=connection
        )
        assert await count(db) == 0

    assert [row["id"] for row in await db.fetch("SELECT id FROM pgqueue.jobs ORDER BY id")] == ids
    assert await payloads(db) == [{"text": "a", "numbers": []}, {"text": "b", "numbers": [2]}]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_enqueue_batch_rolls_back_with_the_callers_transaction(
    queue: Queue, db: asyncpg.Connection, dsn: str, driver: str
) -> None:
    await in_rolled_back_transaction(
        driver,
        dsn,
        lambda connection: queue.enqueue_batch(
            [Echo(text="a"), Echo(text="b")], connection=connection
        ),
    )

    assert await count(db) == 0


@pytest.mark.parametrize("driver", DRIVERS)
async def test_dispatch_using_a_connection_joins_its_transaction(
    queue: Queue, db: asyncpg.Connection, dsn: str, driver: str
) -> None:
    await in_rolled_back_transaction(
        driver, dsn, lambda connection: queue.dispatch(Echo(text="a")).using(connection).enqueue()
    )
    async with transaction(driver, dsn) as connection:
        job_id = await queue.dispatch(Echo(text="b")).using(connection).with_priority(3)

    rows = await db.fetch("SELECT id, priority FROM pgqueue.jobs")
    assert [(row["id"], row["priority"]) for row in rows] == [(job_id, 3)]


# --- NOTIFY at commit, never on rollback ----------------------------------------------------------


async def test_commit_of_several_jobs_of_one_queue_sends_one_notification(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    async with notifications(dsn) as received:
        async with transaction("asyncpg", dsn) as connection:
            for text in ("a", "b", "c"):
                await queue.enqueue(Echo(text=text), connection=connection)
            await queue.enqueue_batch([Echo(text="d"), Echo(text="e")], connection=connection)

        assert await delivered(db, received) == ["tests"]
    assert await count(db) == 5


async def test_batch_over_two_queues_notifies_each_queue_once(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    async with notifications(dsn) as received:
        await queue.enqueue_batch([Echo(text="a"), Echo(text="b")])
        await queue.enqueue_batch([Echo(text="c"), Echo(text="d")], queue="emails")

        assert sorted(await delivered(db, received)) == ["emails", "tests"]


async def test_rollback_sends_no_notification(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    async with notifications(dsn) as received:

        async def enqueue_both_ways(connection: object) -> None:
            await queue.enqueue(Echo(text="a"), connection=connection)
            await queue.enqueue_batch([Echo(text="b")], connection=connection)

        await in_rolled_back_transaction("asyncpg", dsn, enqueue_both_ways)

        assert await delivered(db, received) == []


# --- limits -----------------------------------------------------------------------------------


async def test_queue_name_of_63_characters_is_accepted(
    queue: Queue, db: asyncpg.Connection
) -> None:
    name = "q" * 63

    await queue.enqueue(Echo(text="x"), queue=name)

    assert await db.fetchval("SELECT queue FROM pgqueue.jobs") == name


async def test_payload_of_5_megabytes_is_stored_intact(
    queue: Queue, db: asyncpg.Connection
) -> None:
    text = "0123456789" * 500_000

    job_id = await queue.enqueue(Echo(text=text))

    stored = await db.fetchval("SELECT payload ->> 'text' FROM pgqueue.jobs WHERE id = $1", job_id)
    assert stored == text


async def test_batch_of_10000_returns_ids_in_input_order(
    queue: Queue, db: asyncpg.Connection
) -> None:
    ids = await queue.enqueue_batch([Echo(text=str(n)) for n in range(10_000)])

    assert len(set(ids)) == 10_000
    rows = await db.fetch("SELECT id, payload ->> 'text' AS text FROM pgqueue.jobs")
    text_of = {row["id"]: row["text"] for row in rows}
    assert [text_of[job_id] for job_id in ids] == [str(n) for n in range(10_000)]


async def test_empty_batch_writes_nothing(queue: Queue, db: asyncpg.Connection) -> None:
    assert await queue.enqueue_batch([]) == []
    assert await count(db) == 0


# --- options are stored as given ----------------------------------------------------------------


async def test_dispatch_with_max_retries_and_backoff_stores_both(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = (
        await queue.dispatch(Echo(text="x")).with_max_retries(5).with_backoff(timedelta(seconds=60))
    )

    row = await db.fetchrow(
        "SELECT max_attempts, retry_backoff FROM pgqueue.jobs WHERE id = $1", job_id
    )
    assert row is not None
    assert (row["max_attempts"], row["retry_backoff"]) == (6, timedelta(seconds=60))


async def test_class_defaults_apply_when_no_option_is_given(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue(Echo(text="x"))

    row = await db.fetchrow(
        "SELECT queue, priority, max_attempts, retry_backoff, run_at = created_at AS due_now"
        " FROM pgqueue.jobs"
    )
    assert dict(row or {}) == {
        "queue": "tests",
        "priority": 0,
        "max_attempts": None,  # nothing more specific than the worker's default
        "retry_backoff": None,
        "due_now": True,
    }


@pytest.mark.parametrize(
    ("delay", "expected"),
    [(timedelta(minutes=10), timedelta(minutes=10)), (90, timedelta(seconds=90))],
)
async def test_delay_sets_run_at_to_database_now_plus_delay(
    queue: Queue, db: asyncpg.Connection, delay: timedelta | float, expected: timedelta
) -> None:
    job_id = await queue.enqueue(Echo(text="x"), delay=delay)

    # created_at is the inserting transaction's now(), so the difference is exact.
    stored = await db.fetchval("SELECT run_at - created_at FROM pgqueue.jobs WHERE id = $1", job_id)
    assert stored == expected


async def test_run_at_is_stored_as_given(queue: Queue, db: asyncpg.Connection) -> None:
    run_at = datetime(2031, 5, 17, 9, 30, tzinfo=UTC)

    await queue.enqueue(Echo(text="x"), run_at=run_at, priority=-7, queue="reports")

    row = await db.fetchrow("SELECT run_at, priority, queue FROM pgqueue.jobs")
    assert tuple(row or ()) == (run_at, -7, "reports")


async def test_sql_function_enqueue_with_named_arguments(db: asyncpg.Connection) -> None:
    job_id = await db.fetchval(
        "SELECT pgqueue.enqueue(job_type => 'reports.build', payload => '{\"month\": 5}',"
        " queue => 'reports', priority => 2, delay => interval '1 hour')"
    )

    row = await db.fetchrow(
        "SELECT job_type, payload, queue, priority, max_attempts, status::text,"
        " run_at - created_at AS delay FROM pgqueue.jobs WHERE id = $1",
        job_id,
    )
    assert row is not None
    assert json.loads(row["payload"]) == {"month": 5}
    assert (
        row["job_type"],
        row["queue"],
        row["priority"],
        row["max_attempts"],
        row["status"],
        row["delay"],
    ) == ("reports.build", "reports", 2, None, "pending", timedelta(hours=1))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("run_at => now(), delay => interval '1 s'", "give run_at or delay, not both"),
        ("delay => interval '-1 s'", "is negative"),
        ("queue => 'has space'", "jobs_queue_check"),
        ("queue => ''", "jobs_queue_check"),
        (f"queue => '{'q' * 64}'", "jobs_queue_check"),
        ("queue => 'caf\u00e9'", "jobs_queue_check"),
        ("queue => 'line\nbreak'", "jobs_queue_check"),
    ],
)
async def test_sql_function_enqueue_rejects_bad_arguments(
    db: asyncpg.Connection, arguments: str, message: str
) -> None:
    with pytest.raises(asyncpg.PostgresError, match=message):
        await db.fetchval(f"SELECT pgqueue.enqueue(job_type => 'x', {arguments})")

    assert await count(db) == 0


# --- bad input raises a clear error and writes nothing ----------------------------------------


NAIVE = datetime(2030, 1, 1, 12, 0)  # deliberately without a timezone
AWARE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

BAD_OPTIONS = {
    "naive run_at": ({"run_at": NAIVE}, InvalidJob, "has no timezone"),
    "negative delay": ({"delay": timedelta(seconds=-1)}, InvalidJob, "delay must not be negative"),
    "negative delay in seconds": ({"delay": -5}, InvalidJob, "delay must not be negative"),
    "run_at and delay": ({"run_at": AWARE, "delay": 5}, InvalidJob, "run_at or delay, not both"),
    "queue with a space": ({"queue": "a b"}, InvalidQueueName, "'a b' is invalid"),
    "queue of 64 characters": ({"queue": "q" * 64}, InvalidQueueName, "is invalid"),
    "empty queue": ({"queue": ""}, InvalidQueueName, "'' is invalid"),
    "priority too high": ({"priority": 40_000}, InvalidJob, "priority must be an int"),
    "priority too low": ({"priority": -40_000}, InvalidJob, "priority must be an int"),
    "negative max_retries": ({"max_retries": -1}, InvalidJob, "max_retries must be an int"),
    "max_retries too high": ({"max_retries": 40_000}, InvalidJob, "max_retries must be an int"),
    "negative backoff": ({"backoff": -1}, InvalidJob, "backoff must not be negative"),
    "infinite delay": ({"delay": math.inf}, InvalidJob, "delay must be a finite number"),
    "NaN delay": ({"delay": math.nan}, InvalidJob, "delay must be a finite number"),
    "delay past a century": ({"delay": 1e300}, InvalidJob, "delay must be at most a century"),
    "NaN backoff": ({"backoff": math.nan}, InvalidJob, "backoff must be a finite number"),
    "NaN priority": ({"priority": math.nan}, InvalidJob, "priority must be an int"),
    "NaN max_retries": ({"max_retries": math.nan}, InvalidJob, "max_retries must be an int"),
    "run_at datetime.max": ({"run_at": datetime.max.replace(tzinfo=UTC)}, InvalidJob, "century"),
}


@pytest.mark.parametrize(
    ("options", "error", "message"), list(BAD_OPTIONS.values()), ids=list(BAD_OPTIONS)
)
async def test_bad_option_raises_and_writes_nothing(
    queue: Queue,
    db: asyncpg.Connection,
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        await queue.enqueue(Echo(text="x"), **options)
    with pytest.raises(error, match=message):
        await queue.enqueue_batch([Echo(text="x")], **options)

    assert await count(db) == 0


BAD_JOBS = {
    "not a Job": ({"text": "x"}, "dict is not a registered job class"),
    "Job without handle()": (Draft(text="x"), "Draft is not a registered job class"),
}


@pytest.mark.parametrize(("job", "message"), list(BAD_JOBS.values()), ids=list(BAD_JOBS))
async def test_unregistered_job_raises_and_writes_nothing(
    queue: Queue, db: asyncpg.Connection, job: object, message: str
) -> None:
    with pytest.raises(UnregisteredJob, match=message):
        await queue.enqueue(job)  # type: ignore[arg-type]
    with pytest.raises(UnregisteredJob, match=message):
        await queue.enqueue_batch([Echo(text="fine"), job])  # type: ignore[list-item]

    assert await count(db) == 0


async def test_connection_of_the_wrong_type_raises_type_error_and_writes_nothing(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    with pytest.raises(TypeError, match="connection= got a str: pass an asyncpg connection"):
        await queue.enqueue(Echo(text="x"), connection=dsn)
    with pytest.raises(TypeError, match="connection= got a str"):
        await queue.enqueue_batch([Echo(text="x")], connection=dsn)

    assert await count(db) == 0


async def test_one_bad_job_in_a_batch_writes_none_of_it(
    queue: Queue, db: asyncpg.Connection
) -> None:
    with pytest.raises(InvalidQueueName):
        await queue.enqueue_batch([Note(log_path="/dev/null"), Echo(text="x")], queue="a b")

    assert await count(db) == 0


async def test_the_longest_queue_name_is_accepted_by_the_sql_function(
    db: asyncpg.Connection,
) -> None:
    name = "A-z_0.9" * 9  # 63 characters, each kind the check allows
    job_id = await db.fetchval("SELECT pgqueue.enqueue(job_type => 'x', queue => $1)", name)

    assert await db.fetchval("SELECT queue FROM pgqueue.jobs WHERE id = $1", job_id) == name


async def test_a_batch_of_several_classes_gives_each_row_its_own_class_defaults(
    queue: Queue, db: asyncpg.Connection
) -> None:
    jobs = [
        Echo(text="a"),
        Flaky(succeed_on=1),
        QueueOrderProbe(label="b", log_path="/dev/null"),
        Summarize(values=[1, 2]),
        Echo(text="c"),
    ]

    ids = await queue.enqueue_batch(jobs, priority=3)

    rows = await db.fetch(
        "SELECT job_type, payload::text, queue, max_attempts, priority FROM pgqueue.jobs"
        " WHERE id = ANY($1) ORDER BY id",
        ids,
    )
    assert [(r["job_type"], json.loads(r["payload"]), r["queue"]) for r in rows] == [
        (job.job_options.name, job.model_dump(mode="json"), job.job_options.queue) for job in jobs
    ]
    assert [r["max_attempts"] for r in rows] == [None, 4, None, None, None]  # Flaky: 3 retries
    assert {r["priority"] for r in rows} == {3}


async def test_a_nul_character_deep_in_a_batch_writes_none_of_it(
    queue: Queue, db: asyncpg.Connection
) -> None:
    jobs = [Echo(text=str(n)) for n in range(99)] + [Echo(text="a\x00b")]

    with pytest.raises(InvalidJob, match="NUL character"):
        await queue.enqueue_batch(jobs)

    assert await count(db) == 0


async def test_nul_character_in_a_payload_is_rejected_but_its_escaped_spelling_is_text(
    queue: Queue, db: asyncpg.Connection
) -> None:
    with pytest.raises(InvalidJob, match=r"NUL character \(\\u0000\), which PostgreSQL cannot"):
        await queue.enqueue(Echo(text="a\x00b"))
    assert await count(db) == 0

    job_id = await queue.enqueue(Echo(text=r"\u0000"))  # a backslash and five characters
    stored = await db.fetchval("SELECT payload ->> 'text' FROM pgqueue.jobs WHERE id = $1", job_id)
    assert stored == r"\u0000"


# --- NaN, infinities and values out of range, through every way in -------------------------

AHEAD = datetime.now(UTC) + timedelta(days=36525 + 2)
EAST = timezone(timedelta(hours=1))
WEST = timezone(timedelta(hours=-3))

OUT_OF_RANGE: dict[str, tuple[str, object, str]] = {
    "delay inf": ("delay", math.inf, "delay must be a finite number of seconds, got inf"),
    "delay -inf": ("delay", -math.inf, "delay must be a finite number of seconds, got -inf"),
    "delay nan": ("delay", math.nan, "delay must be a finite number of seconds, got nan"),
    "delay 1e300": ("delay", 1e300, "delay must be at most a century (36525 days), got 1e+300"),
    "delay 2**70": ("delay", 2**70, "delay must be at most a century"),
    "delay timedelta.max": ("delay", timedelta.max, "delay must be at most a century"),
    "backoff inf": ("backoff", math.inf, "backoff must be a finite number"),
    "backoff 1e12": ("backoff", 1e12, "backoff must be at most a century"),
    "unique_for nan": ("unique_for", math.nan, "unique_for must be a finite number"),
    "unique_for 1e300": ("unique_for", 1e300, "unique_for must be at most a century"),
    "priority inf": ("priority", math.inf, "priority must be an int from -32767 to 32767"),
    "priority 2**70": ("priority", 2**70, "priority must be an int from -32767 to 32767"),
    "max_retries 2**70": ("max_retries", 2**70, "max_retries must be an int from 0 to 32766"),
    "depends_on 2**70": ("depends_on", [2**70], "depends_on must hold job ids"),
    "depends_on 2**63": ("depends_on", [2**63], "depends_on must hold job ids"),
    "depends_on nan": ("depends_on", [math.nan], "depends_on must hold job ids"),
    "run_at datetime.max": ("run_at", datetime.max.replace(tzinfo=UTC), "century from now"),
    "run_at datetime.min": ("run_at", datetime.min.replace(tzinfo=UTC), "century from now"),
    "run_at year 1 east of UTC": ("run_at", datetime(1, 1, 1, tzinfo=EAST), "century from now"),
    "run_at 9999 west of UTC": ("run_at", datetime(9999, 12, 31, 23, tzinfo=WEST), "century"),
    "run_at past a century": ("run_at", AHEAD, "is more than a century from now"),
}

BUILDER = {
    "delay": lambda d, v: d.with_delay(v),
    "backoff": lambda d, v: d.with_backoff(v),
    "priority": lambda d, v: d.with_priority(v),
    "max_retries": lambda d, v: d.with_max_retries(v),
    "unique_for": lambda d, v: d.with_unique_key("key", unique_for=v),
    "depends_on": lambda d, v: d.after(*v),
    "run_at": lambda d, v: d.with_run_at(v),
}
BY_NAME = {"delay", "priority", "max_retries", "depends_on"}  # enqueue_by_name's keywords
BATCH = {"delay", "backoff", "priority", "max_retries", "run_at"}  # enqueue_batch's


@pytest.mark.parametrize(
    ("keyword", "value", "message"), list(OUT_OF_RANGE.values()), ids=list(OUT_OF_RANGE)
)
async def test_nan_infinite_and_out_of_range_values_raise_invalid_job_everywhere(
    queue: Queue, db: asyncpg.Connection, keyword: str, value: Any, message: str
) -> None:
    options = {keyword: value, **({"unique_key": "key"} if keyword == "unique_for" else {})}
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: queue.enqueue(Echo(text="x"), **options),
        lambda: queue.dispatch(Echo(text="x"), **options).enqueue(),
        lambda: BUILDER[keyword](queue.dispatch(Echo(text="x")), value).enqueue(),
    ]
    if keyword in BATCH:
        attempts.append(lambda: queue.enqueue_batch([Echo(text="x")], **options))
    if keyword in BY_NAME:  # a registered type, and one only another service knows
        attempts.append(lambda: queue.enqueue_by_name("tests.jobs.Echo", {"text": "x"}, **options))
        attempts.append(lambda: queue.enqueue_by_name("elsewhere.Job", {}, **options))

    for attempt in attempts:
        with pytest.raises(InvalidJob) as raised:
            await attempt()
        assert message in str(raised.value)

    assert await count(db) == 0


async def test_a_keyword_a_method_does_not_take_raises_type_error_and_writes_nothing(
    queue: Queue, db: asyncpg.Connection
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(
        TypeError, match=r"enqueue_by_name\(\) got an unexpected keyword argument 'run_at'"
    ):
        await queue.enqueue_by_name("tests.jobs.Echo", {"text": "x"}, run_at=later)
    with pytest.raises(
        TypeError, match=r"enqueue_batch\(\) got an unexpected keyword argument 'unique_key'"
    ):
        await queue.enqueue_batch([Echo(text="x")], unique_key="key")
    with pytest.raises(
        TypeError, match=r"enqueue\(\) got an unexpected keyword argument 'retries'"
    ):
        await queue.enqueue(Echo(text="x"), retries=3)

    assert await count(db) == 0


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
async def test_a_non_json_number_in_a_payload_by_name_raises_invalid_job(
    queue: Queue, db: asyncpg.Connection, number: float
) -> None:
    with pytest.raises(InvalidJob, match=r"the elsewhere\.Job payload is not JSON: Out of range"):
        await queue.enqueue_by_name("elsewhere.Job", {"n": number})

    assert await count(db) == 0


async def test_the_furthest_run_at_and_delay_allowed_are_stored(
    queue: Queue, db: asyncpg.Connection
) -> None:
    century = timedelta(days=36525)
    run_at = datetime.now(UTC) + century - timedelta(minutes=1)
    late = await queue.enqueue(Echo(text="x"), run_at=run_at)
    delayed = await queue.enqueue(Echo(text="x"), delay=century)

    rows = await db.fetch(
        "SELECT run_at, run_at - now() AS ahead FROM pgqueue.jobs WHERE id = ANY($1) ORDER BY id",
        [late, delayed],
    )
    assert rows[0]["run_at"] == run_at
    assert century - timedelta(minutes=1) < rows[1]["ahead"] <= century
