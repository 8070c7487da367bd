"""Unique jobs against a real database: while a live job (pending, running, or completed within
its unique_for) holds a unique_key, enqueueing with that key returns it (``existing``) and
inserts nothing; failed and cancelled jobs free the key; retry, retry_failed and prune respect
it; and concurrent enqueues from many connections, some rolling back, insert exactly one job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from pgqueue import EnqueuedJob, InvalidJob, JobStatus, Queue
from pgqueue.registry import registry
from tests.factories import connections, count, eventually, lock_waiters, running
from tests.jobs import Echo, Note, Summarize, Summary
from tests.store import transitions
from tests.store.transitions import start

KEY = "welcome:42"


# --- helpers ----------------------------------------------------------------------------------


async def complete(db: asyncpg.Connection, job_id: int) -> None:
    """Claim ``job_id`` (alone in its queue) and complete it."""
    assert await transitions.complete(db, job_id, await start(db, job_id)) == [job_id]


async def fail(db: asyncpg.Connection, job_id: int) -> None:
    """Claim ``job_id`` (alone in its queue) and fail it for good, as the executor does."""
    assert await transitions.fail(db, job_id, await start(db, job_id)) == "failed"


async def holders(db: asyncpg.Connection, key: str = KEY) -> list[tuple[int, str]]:
    """(id, status) of every job with ``key``, in id order."""
    rows = await db.fetch(
        "SELECT id, status::text FROM pgqueue.jobs WHERE unique_key = $1 ORDER BY id", key
    )
    return [(row["id"], row["status"]) for row in rows]


# --- the key is held while a job is live ----------------------------------------------------


async def test_second_enqueue_while_the_first_is_pending_returns_it_and_inserts_nothing(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await queue.enqueue(Echo(text="first"), unique_key=KEY)
    second = await queue.enqueue(Echo(text="second"), unique_key=KEY)

    assert isinstance(first, EnqueuedJob)
    assert isinstance(second, int)
    assert (first.existing, second.existing) == (False, True)
    assert second == first
    assert (str(second), repr(second)) == (str(int(first)), f"EnqueuedJob({first}, existing=True)")
    rows = await db.fetch("SELECT id, payload ->> 'text' AS text, unique_key FROM pgqueue.jobs")
    assert [tuple(row) for row in rows] == [(first, "first", KEY)]
    assert (await queue.get_job(first)).unique_key == KEY


async def test_jobs_without_a_key_or_with_other_keys_are_never_existing(
    queue: Queue, db: asyncpg.Connection
) -> None:
    plain = [await queue.enqueue(Echo(text="x")) for _ in range(2)]
    keyed = [await queue.enqueue(Echo(text="x"), unique_key=f"welcome:{n}") for n in range(2)]

    assert [job.existing for job in plain + keyed] == [False] * 4
    assert await count(db) == 4


async def test_the_key_is_one_namespace_across_job_types_and_queues(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await queue.enqueue(Echo(text="first"), unique_key=KEY)

    other = await queue.enqueue(Note(log_path="/dev/null"), unique_key=KEY, queue="elsewhere")

    assert (other, other.existing) == (first, True)
    assert await count(db) == 1


async def test_the_key_is_held_while_the_job_runs(queue: Queue, db: asyncpg.Connection) -> None:
    first = await queue.enqueue(Echo(text="first"), unique_key=KEY)
    await start(db, first)

    again = await queue.enqueue(Echo(text="again"), unique_key=KEY)

    assert (again, again.existing) == (first, True)
    assert await holders(db) == [(first, "running")]


async def test_a_blocked_dependent_holds_its_key(queue: Queue, db: asyncpg.Connection) -> None:
    parent = await queue.enqueue(Echo(text="parent"))
    first = await queue.enqueue(Echo(text="first"), unique_key=KEY, depends_on=[parent])

    again = await queue.enqueue(Echo(text="again"), unique_key=KEY)

    assert (again, again.existing) == (first, True)
    assert await holders(db) == [(first, "pending")]


async def test_completion_without_unique_for_frees_the_key(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await queue.enqueue(Echo(text="first"), unique_key=KEY)
    await complete(db, first)

    again = await queue.enqueue(Echo(text="again"), unique_key=KEY)

    assert again.existing is False
    assert await holders(db) == [(first, "completed"), (again, "pending")]


@pytest.mark.parametrize("unique_for", [timedelta(hours=1), 3600], ids=["timedelta", "seconds"])
async def test_completion_holds_the_key_for_unique_for(
    queue: Queue, db: asyncpg.Connection, unique_for: timedelta | float
) -> None:
    first = await queue.enqueue(Echo(text="first"), unique_key=KEY, unique_for=unique_for)
    await complete(db, first)

    again = await queue.enqueue(Echo(text="again"), unique_key=KEY)

    assert (again, again.existing) == (first, True)
    assert await holders(db) == [(first, "completed")]
    # The hold starts at completion: the completing transaction's now() + unique_for.
    held_for = await db.fetchval(
        "SELECT unique_until - finished_at FROM pgqueue.jobs WHERE id = $1", first
    )
    assert held_for == timedelta(hours=1)


async def test_the_key_is_free_again_once_unique_for_has_passed(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await queue.enqueue(Echo(text="first"), unique_key=KEY, unique_for=timedelta(hours=1))
    await complete(db, first)
    await db.execute(  # an hour has passed
        "UPDATE pgqueue.jobs SET finished_at = finished_at - interval '1 hour 1 second',"
        " unique_until = unique_until - interval '1 hour 1 second'"
    )

    again = await queue.enqueue(Echo(text="again"), unique_key=KEY)

    assert again.existing is False
    assert await holders(db) == [(first, "completed"), (again, "pending")]
    # The expired holder let go of the key: it no longer takes part in the unique index.
    assert await db.fetchval("SELECT unique_until FROM pgqueue.jobs WHERE id = $1", first) is None
    assert (await queue.enqueue(Echo(text="third"), unique_key=KEY)) == again


async def test_unique_for_of_zero_frees_the_key_at_completion(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await queue.enqueue(Echo(text="first"), unique_key=KEY, unique_for=0)
    await complete(db, first)

    again = await queue.enqueue(Echo(text="again"), unique_key=KEY)

    assert again.existing is False


@pytest.mark.parametrize("ending", ["failed", "cancelled"])
async def test_a_failed_or_cancelled_holder_frees_the_key(
    queue: Queue, db: asyncpg.Connection, ending: str
) -> None:
    first = await queue.enqueue(Echo(text="first"), unique_key=KEY, unique_for=3600)
    if ending == "failed":
        await fail(db, first)
    else:
        assert await queue.cancel(first) is True

    again = await queue.enqueue(Echo(text="again"), unique_key=KEY)

    assert again.existing is False
    assert await holders(db) == [(first, ending), (again, "pending")]


async def test_a_rolled_back_enqueue_leaves_the_key_free(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    app = await asyncpg.connect(dsn)
    try:
        with pytest.raises(RuntimeError, match="rolled back"):  # noqa: PT012
            async with app.transaction():
                held = await queue.enqueue(Echo(text="first"), unique_key=KEY, connection=app)
                assert held.existing is False
                raise RuntimeError("rolled back")
    finally:
        await app.close()

    again = await queue.enqueue(Echo(text="again"), unique_key=KEY)

    assert again.existing is False
    assert await holders(db) == [(again, "pending")]


async def test_enqueue_waits_for_an_uncommitted_holder_and_returns_it_once_committed(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    app = await asyncpg.connect(dsn)
    try:
        transaction = app.transaction()
        await transaction.start()
        held = await queue.enqueue(Echo(text="first"), unique_key=KEY, connection=app)
        waiting = asyncio.create_task(queue.enqueue(Echo(text="again"), unique_key=KEY))
        await eventually(lambda: lock_waiters(db), until=lambda n: n == 1)
        await transaction.commit()
        again = await waiting
    finally:
        await app.close()

    assert (again, again.existing) == (held, True)
    assert await holders(db) == [(held, "pending")]


async def test_dispatch_with_unique_key_stores_the_key_and_its_hold(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await queue.dispatch(Echo(text="first")).with_unique_key(KEY, timedelta(minutes=5))
    again = await queue.dispatch(Echo(text="again")).with_unique_key(KEY)

    assert (first.existing, again, again.existing) == (False, first, True)
    row = await db.fetchrow("SELECT unique_key, unique_for FROM pgqueue.jobs WHERE id = $1", first)
    assert tuple(row or ()) == (KEY, timedelta(minutes=5))


async def test_sql_functions_return_the_holder_of_a_taken_key(db: asyncpg.Connection) -> None:
    first = await db.fetchval("SELECT pgqueue.enqueue('reports.build', unique_key => 'k')")
    again = await db.fetchval("SELECT pgqueue.enqueue('reports.build', unique_key => 'k')")
    row = await db.fetchrow("SELECT id, existing FROM pgqueue.enqueue_job('x', unique_key => 'k')")

    assert again == first
    assert tuple(row or ()) == (first, True)
    assert await count(db) == 1


BAD_UNIQUE_OPTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "unique_for alone": ({"unique_for": 60}, "unique_for needs a unique_key"),
    "unique_for alone as timedelta": (
        {"unique_for": timedelta(minutes=1)},
        "unique_for needs a unique_key",
    ),
    "empty key": ({"unique_key": ""}, "unique_key must be a non-empty string, got ''"),
    "key not a string": ({"unique_key": 42}, "unique_key must be a non-empty string, got 42"),
    "negative unique_for": ({"unique_key": KEY, "unique_for": -1}, "unique_for must not be neg"),
    "negative unique_for as timedelta": (
        {"unique_key": KEY, "unique_for": timedelta(seconds=-1)},
        "unique_for must not be negative",
    ),
}


@pytest.mark.parametrize(
    ("options", "message"), list(BAD_UNIQUE_OPTIONS.values()), ids=list(BAD_UNIQUE_OPTIONS)
)
async def test_bad_unique_options_raise_invalid_job_and_write_nothing(
    queue: Queue, db: asyncpg.Connection, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidJob, match=message):
        await queue.enqueue(Echo(text="x"), **options)
    with pytest.raises(InvalidJob, match=message):
        await queue.dispatch(Echo(text="x"), **options)

    assert await count(db) == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("unique_for => interval '1 min'", "unique_for needs a unique_key"),
        ("unique_key => 'k', unique_for => interval '-1 s'", "unique_for -00:00:01 is negative"),
    ],
)
async def test_sql_function_rejects_bad_unique_options(
    db: asyncpg.Connection, arguments: str, message: str
) -> None:
    with pytest.raises(asyncpg.PostgresError, match=message):
        await db.fetchval(f"SELECT pgqueue.enqueue(job_type => 'x', {arguments})")

    assert await count(db) == 0


# --- retry and prune respect the key ------------------------------------------------------------


async def test_retry_of_a_failed_job_whose_key_another_live_job_holds_does_nothing(
    queue: Queue, db: asyncpg.Connection
) -> None:
    failed = await queue.enqueue(Echo(text="failed"), unique_key=KEY)
    await fail(db, failed)
    holder = await queue.enqueue(Echo(text="holder"), unique_key=KEY)
    unkeyed = await queue.enqueue(Echo(text="unkeyed"), queue="other")
    await fail(db, unkeyed)

    assert await queue.retry(failed) is False
    assert await queue.retry_failed() == 1  # the unkeyed one only

    assert await holders(db) == [(failed, "failed"), (holder, "pending")]
    assert (await queue.get_job(unkeyed)).status is JobStatus.PENDING

    await queue.cancel(holder)  # the key is free again
    assert await queue.retry(failed) is True
    assert await holders(db) == [(failed, "pending"), (holder, "cancelled")]
    assert (await queue.enqueue(Echo(text="again"), unique_key=KEY)) == failed


async def test_retry_of_a_failed_job_whose_key_a_completed_job_still_holds_does_nothing(
    queue: Queue, db: asyncpg.Connection
) -> None:
    failed = await queue.enqueue(Echo(text="failed"), unique_key=KEY)
    await fail(db, failed)
    holder = await queue.enqueue(Echo(text="holder"), unique_key=KEY, unique_for=3600)
    await complete(db, holder)

    assert await queue.retry(failed) is False
    assert await queue.retry_failed() == 0
    assert await holders(db) == [(failed, "failed"), (holder, "completed")]


async def test_retry_of_a_failed_job_whose_key_is_free_makes_it_the_holder(
    queue: Queue, db: asyncpg.Connection
) -> None:
    failed = await queue.enqueue(Echo(text="failed"), unique_key=KEY)
    await fail(db, failed)

    assert await queue.retry_failed() == 1

    again = await queue.enqueue(Echo(text="again"), unique_key=KEY)
    assert (again, again.existing) == (failed, True)


async def test_retry_of_a_failed_job_after_a_later_holders_unique_for_ran_out(
    queue: Queue, db: asyncpg.Connection
) -> None:
    failed = await queue.enqueue(Echo(text="failed"), unique_key=KEY)
    await fail(db, failed)
    holder = await queue.enqueue(Echo(text="holder"), unique_key=KEY, unique_for=0)
    await complete(db, holder)  # held until its completion's now(): free from then on

    assert await queue.retry(failed) is True

    assert (await queue.enqueue(Echo(text="again"), unique_key=KEY)) == failed


async def test_retry_failed_revives_one_of_two_failed_jobs_sharing_a_key(
    queue: Queue, db: asyncpg.Connection
) -> None:
    for text in ("one", "two"):
        await fail(db, await queue.enqueue(Echo(text=text), unique_key=KEY))

    assert await queue.retry_failed() == 1

    assert sorted(status for _, status in await holders(db)) == ["failed", "pending"]


async def test_prune_keeps_a_completed_job_while_it_holds_its_key(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await queue.enqueue(Echo(text="first"), unique_key=KEY, unique_for=timedelta(days=3))
    await complete(db, first)
    await db.execute(  # finished two days ago: past the 1-day retention, but holds its key a day
        "UPDATE pgqueue.jobs SET finished_at = finished_at - interval '2 days',"
        " unique_until = unique_until - interval '2 days'"
    )

    assert (await queue.prune())[JobStatus.COMPLETED] == 0
    assert (await queue.enqueue(Echo(text="again"), unique_key=KEY)) == first

    await db.execute("UPDATE pgqueue.jobs SET unique_until = now() - interval '1 second'")
    assert (await queue.prune())[JobStatus.COMPLETED] == 1
    again = await queue.enqueue(Echo(text="again"), unique_key=KEY)
    assert again.existing is False
    assert await holders(db) == [(again, "pending")]


async def test_enqueue_with_a_held_key_returns_the_holder_even_if_its_parent_failed(
    queue: Queue, db: asyncpg.Connection
) -> None:
    holder = await queue.enqueue(Echo(text="holder"), unique_key=KEY)
    parent = await queue.enqueue(Echo(text="parent"), queue="parents")
    await queue.cancel(parent)

    again = await queue.enqueue(Echo(text="again"), unique_key=KEY, depends_on=[parent])

    assert (again, again.existing) == (holder, True)
    assert await holders(db) == [(holder, "pending")]


async def test_a_duplicate_enqueue_in_an_open_transaction_does_not_hold_up_the_holder(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    holder = await queue.enqueue(Echo(text="holder"), unique_key=KEY)
    app = await asyncpg.connect(dsn)
    try:
        async with app.transaction():  # e.g. a web request that goes on after the enqueue
            duplicate = await queue.enqueue(Echo(text="again"), unique_key=KEY, connection=app)
            assert (duplicate, duplicate.existing) == (holder, True)
            claimed = await db.fetch(
                "SELECT id FROM pgqueue.claim_jobs(ARRAY['tests'], $1, $2, 10)",
                registry.names(),
                uuid4(),
            )
            assert [row["id"] for row in claimed] == [holder]
    finally:
        await app.close()


async def test_a_worker_completes_a_unique_job_and_its_hold_returns_it_with_its_result(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue):
        first = await queue.enqueue(
            Summarize(values=[1, 2]), unique_key=KEY, unique_for=timedelta(hours=1)
        )
        assert await queue.wait_for(first, 10) == Summary(total=3, label="2 values")
        again = await queue.enqueue(Summarize(values=[5]), unique_key=KEY)

    assert (again, again.existing) == (first, True)
    assert await queue.wait_for(again, 1) == Summary(total=3, label="2 values")
    assert await holders(db) == [(first, "completed")]


# --- races ------------------------------------------------------------------------------------


Enqueue = Callable[[int], Awaitable[EnqueuedJob]]


@contextlib.asynccontextmanager
async def enqueuers(how: str, dsn: str, n: int, key: str) -> AsyncIterator[list[Enqueue]]:
    """``n`` enqueue functions, each on a connection of its own: through ``connection=``, or a
    Queue of its own on a pool of one connection."""
    if how == "connection":
        async with Queue.connect(dsn, min_size=1, max_size=1) as queue, connections(dsn, n) as own:
            yield [
                lambda i, c=c: queue.enqueue(Echo(text=str(i)), unique_key=key, connection=c)
                for c in own
            ]
    else:
        queues = await asyncio.gather(
            *(Queue.connect(dsn, min_size=1, max_size=1) for _ in range(n))
        )
        try:
            yield [lambda i, q=q: q.enqueue(Echo(text=str(i)), unique_key=key) for q in queues]
        finally:
            await asyncio.gather(*(q.close() for q in queues))


async def assert_one_job_holds(
    db: asyncpg.Connection, key: str, results: list[tuple[int, EnqueuedJob]]
) -> None:
    """Exactly one job with ``key``, every result its id, exactly one of them its inserter."""
    rows = await db.fetch(
        "SELECT id, payload ->> 'text' AS text FROM pgqueue.jobs WHERE unique_key = $1", key
    )
    assert len(rows) == 1, rows
    [(job_id, text)] = [tuple(row) for row in rows]
    assert {int(result) for _, result in results} == {job_id}
    inserters = [n for n, result in results if not result.existing]
    assert inserters == [int(text)]


@pytest.mark.parametrize("how", ["connection", "pool"])
async def test_twenty_concurrent_enqueues_of_one_key_insert_exactly_one_job(
    db: asyncpg.Connection, dsn: str, how: str
) -> None:
    for round_ in range(5):
        key = f"{KEY}:{round_}"
        async with enqueuers(how, dsn, 20, key) as enqueue:
            results = await asyncio.gather(*(enqueue[n](n) for n in range(20)))

        await assert_one_job_holds(db, key, list(enumerate(results)))
    assert await count(db) == 5


async def test_twenty_enqueues_released_at_once_by_a_rolled_back_holder_insert_exactly_one(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    """A first insert holds the key uncommitted until all 20 wait on it, then rolls back: they
    all go for the key at the same moment."""
    async with connections(dsn, 1) as (first,), enqueuers("connection", dsn, 20, KEY) as enqueue:
        transaction = first.transaction()
        await transaction.start()
        await queue.enqueue(Echo(text="-1"), unique_key=KEY, connection=first)
        racing = asyncio.gather(*(enqueue[n](n) for n in range(20)))
        await eventually(lambda: lock_waiters(db), until=lambda n: n == 20)
        await transaction.rollback()
        results = await racing

    await assert_one_job_holds(db, KEY, list(enumerate(results)))


async def enqueue_then_end(
    connection: asyncpg.Connection, queue: Queue, n: int, key: str, *, commit: bool
) -> EnqueuedJob:
    """Enqueue in a transaction of ``connection``, then commit it or roll it back."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        job = await queue.enqueue(Echo(text=str(n)), unique_key=key, connection=connection)
    except BaseException:
        await transaction.rollback()
        raise
    if commit:
        await transaction.commit()
    else:
        await transaction.rollback()
    return job


@pytest.mark.parametrize("start", ["together", "released by a rolled back holder"])
async def test_racing_enqueues_that_roll_back_never_lose_the_key(
    queue: Queue, db: asyncpg.Connection, dsn: str, start: str
) -> None:
    """20 enqueues race for one key; every other one rolls its transaction back. The key ends up
    held by one job of a committed transaction, whose id every committed enqueue returned."""
    for round_ in range(5):
        key = f"{KEY}:{round_}"
        committing = [n % 2 == 0 for n in range(20)]
        async with connections(dsn, 21) as (first, *own):
            holder = first.transaction()
            if start != "together":
                await holder.start()
                await queue.enqueue(Echo(text="-1"), unique_key=key, connection=first)
            racing = asyncio.gather(
                *(enqueue_then_end(own[n], queue, n, key, commit=committing[n]) for n in range(20))
            )
            if start != "together":
                await eventually(lambda: lock_waiters(db), until=lambda n: n == 20)
                await holder.rollback()
            results = await racing

        committed = [(n, job) for n, job in enumerate(results) if committing[n]]
        await assert_one_job_holds(db, key, committed)
        kept = await db.fetchval("SELECT id FROM pgqueue.jobs WHERE unique_key = $1", key)
        for n, job in enumerate(results):
            if committing[n]:
                continue
            if job.existing:  # a rolled-back enqueue saw the committed holder
                assert job == kept
            else:  # or inserted its own job, gone with its transaction
                assert (
                    await db.fetchval("SELECT count(*) FROM pgqueue.jobs WHERE id = $1", job) == 0
                )
    assert await count(db) == 5


@pytest.mark.parametrize(
    ("key", "problem"),
    [("a\x00b", "NUL"), ("k" * 2001, "2001 bytes"), ("é" * 1001, "2002 bytes")],
)
async def test_a_key_postgresql_cannot_index_is_refused_and_writes_nothing(
    queue: Queue, db: asyncpg.Connection, key: str, problem: str
) -> None:
    with pytest.raises(InvalidJob, match=problem):
        await queue.enqueue(Echo(text="x"), unique_key=key)
    assert await count(db) == 0
    longest = await queue.enqueue(Echo(text="x"), unique_key="é" * 1000)  # 2,000 bytes: fits
    assert await db.fetchval("SELECT octet_length(unique_key) FROM pgqueue.jobs") == 2000
    assert await count(db) == 1
    assert not longest.existing
