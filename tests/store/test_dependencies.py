"""Job dependencies against a real database: a dependent is blocked until every parent has
completed, released in the transaction that completes the last one, cancelled (down its chain)
when a parent fails, is cancelled or deleted; chain() and group() are all-or-nothing; and the
races between finishing parents and enqueueing dependents leave no job blocked for ever.

Jobs are claimed and finished through the SQL functions the worker uses (claim_jobs,
complete_jobs, fail_job), each parent in a queue of its own so that a claim takes exactly it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID, uuid4

import asyncpg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from pgqueue import InvalidJob, JobStatus, Queue, QueueStats, Retention
from pgqueue.registry import registry
from tests.factories import connections, count, delivered, eventually, lock_waiters, notifications
from tests.jobs import Echo
from tests.store.transitions import complete, fail, start

Outcome = Literal["complete", "fail"]


# --- helpers ----------------------------------------------------------------------------------


async def parent(queue: Queue, name: str, **options: Any) -> int:
    """A job alone in queue ``name``, so that claiming that queue takes exactly it."""
    return await queue.enqueue(Echo(text=name), queue=name, **options)


async def finish(
    connection: asyncpg.Connection, job_id: int, worker_id: UUID, outcome: Outcome
) -> None:
    if outcome == "complete":
        assert await complete(connection, job_id, worker_id) == [job_id]
    else:
        assert await fail(connection, job_id, worker_id) == "failed"


async def run(db: asyncpg.Connection, job_id: int, outcome: Outcome) -> None:
    """Claim ``job_id`` and finish it: completed, or failed for good."""
    await finish(db, job_id, await start(db, job_id), outcome)


async def state(db: asyncpg.Connection, job_id: int) -> tuple[str, bool, str | None]:
    """(status, blocked, last_error) of a job."""
    row = await db.fetchrow(
        "SELECT status::text, blocked, last_error FROM pgqueue.jobs WHERE id = $1", job_id
    )
    assert row is not None, f"job {job_id} does not exist"
    return row["status"], row["blocked"], row["last_error"]


RELEASED = ("pending", False, None)
BLOCKED = ("pending", True, None)


def cancelled(reason: str) -> tuple[str, bool, str]:
    return ("cancelled", False, reason)


async def claimable(db: asyncpg.Connection, *queues: str) -> list[int]:
    """Claims everything due in ``queues`` (the jobs become running); their ids in id order."""
    rows = await db.fetch(
        "SELECT id FROM pgqueue.claim_jobs($1, $2, $3, 100)",
        list(queues),
        registry.names(),
        uuid4(),
    )
    return sorted(row["id"] for row in rows)


async def until_lock_waiters(db: asyncpg.Connection, n: int) -> None:
    await eventually(lambda: lock_waiters(db), until=lambda waiting: waiting == n)


# --- enqueue: blocked, free to run, or cancelled at once ---------------------------------------


async def test_dependent_of_a_pending_parent_is_blocked_and_never_claimed(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await parent(queue, "first")
    child = await queue.enqueue(Echo(text="child"), depends_on=[first])

    record = await queue.get_job(child)
    assert (record.status, record.blocked, record.depends_on) == (JobStatus.PENDING, True, [first])
    assert child.existing is False
    parent_record = await queue.get_job(first)
    assert (parent_record.blocked, parent_record.depends_on) == (False, None)
    assert await claimable(db, "tests", "first") == [first]
    assert await state(db, child) == BLOCKED


async def test_blocked_jobs_are_counted_as_blocked_not_pending(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await queue.enqueue(Echo(text="parent"))
    for text in ("a", "b"):
        await queue.enqueue(Echo(text=text), depends_on=[first])
    await queue.enqueue(Echo(text="later"), delay=timedelta(hours=1))

    assert await queue.stats("tests") == QueueStats(
        queue="tests",
        pending=1,
        scheduled=1,
        running=0,
        completed=0,
        failed=0,
        cancelled=0,
        blocked=2,
    )
    [overview] = await queue.queue_overview()
    assert (overview.queue, overview.pending, overview.blocked) == ("tests", 1, 2)
    view = await db.fetchrow(
        "SELECT pending, blocked FROM pgqueue.queue_stats WHERE queue = 'tests'"
    )
    assert tuple(view or ()) == (1, 2)


async def test_queue_holding_only_blocked_jobs_has_nothing_coming_due(queue: Queue) -> None:
    first = await parent(queue, "first")
    await queue.enqueue(Echo(text="child"), depends_on=[first], queue="children")

    seconds = await queue.store.seconds_until_next_job(
        queues=["children"], job_types=registry.names()
    )

    assert seconds is None


async def test_completing_the_last_parent_releases_the_dependent(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first, second = await parent(queue, "first"), await parent(queue, "second")
    child = await queue.enqueue(Echo(text="child"), depends_on=[first, second])

    await run(db, first, "complete")
    assert await state(db, child) == BLOCKED
    assert await claimable(db, "tests") == []

    await run(db, second, "complete")
    assert await state(db, child) == RELEASED
    claimed = await db.fetch(
        "SELECT id, depends_on FROM pgqueue.claim_jobs(ARRAY['tests'], $1, $2, 10)",
        registry.names(),
        uuid4(),
    )
    assert [(row["id"], row["depends_on"]) for row in claimed] == [(child, [first, second])]


async def test_parents_are_stored_once_each_in_id_order(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first, second = await parent(queue, "first"), await parent(queue, "second")

    child = await queue.enqueue(Echo(text="child"), depends_on=[second, first, second])

    assert (await queue.get_job(child)).depends_on == [first, second]
    await run(db, second, "complete")
    await run(db, first, "complete")
    assert await state(db, child) == RELEASED


async def test_dependent_of_completed_parents_is_claimable_at_once(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first, second = await parent(queue, "first"), await parent(queue, "second")
    await run(db, first, "complete")
    await run(db, second, "complete")

    child = await queue.enqueue(Echo(text="child"), depends_on=[first, second])

    assert await state(db, child) == RELEASED
    assert await claimable(db, "tests") == [child]


@pytest.mark.parametrize("ending", ["failed", "was cancelled"])
async def test_dependent_of_a_failed_or_cancelled_parent_is_inserted_cancelled(
    queue: Queue, db: asyncpg.Connection, ending: str
) -> None:
    good, bad = await parent(queue, "good"), await parent(queue, "bad")
    await run(db, good, "complete")
    if ending == "failed":
        await run(db, bad, "fail")
    else:
        assert await queue.cancel(bad) is True

    child = await queue.enqueue(Echo(text="child"), depends_on=[good, bad])

    assert await state(db, child) == cancelled(f"parent job {bad} {ending}")
    assert (await queue.get_job(child)).finished_at is not None
    assert await claimable(db, "tests") == []


async def test_run_anyway_dependent_of_finished_parents_runs_at_once_whatever_they_did(
    queue: Queue, db: asyncpg.Connection
) -> None:
    failed, gone, done = [await parent(queue, name) for name in ("failed", "gone", "done")]
    await run(db, failed, "fail")
    await queue.cancel(gone)
    await run(db, done, "complete")

    child = await queue.enqueue(
        Echo(text="child"), depends_on=[failed, gone, done], run_anyway=True
    )

    assert await state(db, child) == RELEASED
    assert await claimable(db, "tests") == [child]


@pytest.mark.parametrize("outcome", ["complete", "fail"])
async def test_run_anyway_dependent_waits_for_every_parent_to_finish(
    queue: Queue, db: asyncpg.Connection, outcome: Outcome
) -> None:
    failed, pending = await parent(queue, "failed"), await parent(queue, "pending")
    await run(db, failed, "fail")

    child = await queue.enqueue(Echo(text="child"), depends_on=[failed, pending], run_anyway=True)
    assert await state(db, child) == BLOCKED

    await run(db, pending, outcome)
    assert await state(db, child) == RELEASED


@contextlib.asynccontextmanager
async def caller_connection(driver: str, dsn: str) -> AsyncIterator[object | None]:
    """None (the queue's pool), or a connection of the caller's through ``driver``."""
    if driver == "pool":
        yield None
    elif driver == "asyncpg":
        connection = await asyncpg.connect(dsn)
        try:
            yield connection
        finally:
            await connection.close()
    elif driver == "sqlalchemy async":
        engine = create_async_engine(
            "postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(dsn)
        )
        try:
            async with AsyncSession(engine) as session:
                yield session
        finally:
            await engine.dispose()
    else:
        sync_engine = create_engine(make_url(dsn).set(drivername="postgresql+psycopg"))
        try:
            with Session(sync_engine) as session:
                yield session
        finally:
            sync_engine.dispose()


@pytest.mark.parametrize("driver", ["pool", "asyncpg", "sqlalchemy async", "sqlalchemy sync"])
async def test_missing_parent_raises_invalid_job_naming_it_and_writes_nothing(
    queue: Queue, db: asyncpg.Connection, dsn: str, driver: str
) -> None:
    existing = await parent(queue, "first")
    missing = existing + 1000

    async with caller_connection(driver, dsn) as connection:
        with pytest.raises(InvalidJob, match=f"^pgqueue.enqueue: parent job {missing} does not"):
            await queue.enqueue(
                Echo(text="child"),
                depends_on=[missing + 5, missing, existing],
                connection=connection,
            )

    assert await count(db) == 1
    assert await state(db, existing) == RELEASED


async def test_dispatch_after_a_missing_parent_raises_invalid_job_and_writes_nothing(
    queue: Queue, db: asyncpg.Connection
) -> None:
    missing = await parent(queue, "first") + 1000

    with pytest.raises(InvalidJob, match=f"parent job {missing} does not exist"):
        await queue.dispatch(Echo(text="child")).after(missing)

    assert await count(db) == 1


async def test_sql_function_enqueue_with_a_missing_parent_raises_a_foreign_key_violation(
    db: asyncpg.Connection,
) -> None:
    existing = await db.fetchval("SELECT pgqueue.enqueue('x')")
    missing = existing + 1000

    with pytest.raises(asyncpg.ForeignKeyViolationError, match=f"parent job {missing} does not"):
        await db.fetchval(
            "SELECT pgqueue.enqueue('x', depends_on => ARRAY[$1, $2]::bigint[])", existing, missing
        )

    assert await count(db) == 1


BAD_DEPENDENCIES: dict[str, tuple[dict[str, Any], str]] = {
    "a string": ({"depends_on": "12"}, "depends_on must be a list of job ids, got '12'"),
    "a bare id": ({"depends_on": 12}, "depends_on must be a list of job ids, got 12"),
    "zero": ({"depends_on": [0]}, "positive ints"),
    "negative": ({"depends_on": [-3]}, "positive ints"),
    "a bool": ({"depends_on": [True]}, "positive ints"),
    "a float": ({"depends_on": [1.0]}, "positive ints"),
    "run_anyway alone": ({"run_anyway": True}, "run_anyway applies to a job with depends_on"),
    "run_anyway not a bool": ({"depends_on": [1], "run_anyway": 1}, "run_anyway must be a bool"),
}


@pytest.mark.parametrize(
    ("options", "message"), list(BAD_DEPENDENCIES.values()), ids=list(BAD_DEPENDENCIES)
)
async def test_bad_depends_on_raises_invalid_job_and_writes_nothing(
    queue: Queue, db: asyncpg.Connection, options: dict[str, Any], message: str
) -> None:
    await parent(queue, "first")

    with pytest.raises(InvalidJob, match=message):
        await queue.enqueue(Echo(text="child"), **options)
    with pytest.raises(InvalidJob, match=message):
        await queue.dispatch(Echo(text="child"), **options)

    assert await count(db) == 1


# --- a parent that ends badly cancels its dependents, down the chain --------------------------


async def test_final_failure_cancels_the_chain_below_it_each_naming_its_parent(
    queue: Queue, db: asyncpg.Connection
) -> None:
    a, b, c = await queue.chain(Echo(text="a"), Echo(text="b"), Echo(text="c"))
    assert await claimable(db, "tests") == [a]  # b and c are blocked

    worker_id = await db.fetchval("SELECT worker_id FROM pgqueue.jobs WHERE id = $1", a)
    assert await fail(db, a, worker_id) == "failed"

    assert await state(db, b) == cancelled(f"parent job {a} failed")
    assert await state(db, c) == cancelled(f"parent job {b} was cancelled")
    for job_id in (b, c):
        record = await queue.get_job(job_id)
        assert (record.attempts, record.finished_at is not None) == (0, True)
    assert (await queue.stats()).cancelled == 2


async def test_failure_with_attempts_left_keeps_dependents_blocked(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await parent(queue, "first", max_retries=1)
    child = await queue.enqueue(Echo(text="child"), depends_on=[first])

    assert await fail(db, first, await start(db, first), permanent=False) == "pending"
    assert await state(db, child) == BLOCKED

    worker_id = uuid4()
    claimed = await db.fetch(
        "SELECT id, attempts FROM pgqueue.claim_jobs(ARRAY['first'], $1, $2, 10)",
        registry.names(),
        worker_id,
    )
    assert [(row["id"], row["attempts"]) for row in claimed] == [(first, 2)]
    assert await db.fetchval(
        "SELECT count(*)"
        " FROM pgqueue.complete_jobs(ARRAY[$1::bigint], ARRAY[2], ARRAY[NULL::jsonb], $2)",
        first,
        worker_id,
    )
    assert await state(db, child) == RELEASED


@pytest.mark.parametrize(("max_retries", "expected"), [(0, "cancelled"), (1, "blocked")])
async def test_rescue_of_a_dead_workers_last_attempt_cancels_dependents(
    queue: Queue, db: asyncpg.Connection, max_retries: int, expected: str
) -> None:
    first = await parent(queue, "first", max_retries=max_retries)
    child = await queue.enqueue(Echo(text="child"), depends_on=[first])
    await start(db, first)  # by a worker that never registered: as good as dead

    rescued = await queue.store.rescue_expired_jobs(
        heartbeat_timeout=timedelta(seconds=30), default_max_attempts=4
    )

    assert rescued == [first]
    if expected == "cancelled":
        assert (await state(db, first))[0] == "failed"
        assert await state(db, child) == cancelled(f"parent job {first} failed")
    else:
        assert (await state(db, first))[0] == "pending"
        assert await state(db, child) == BLOCKED


@pytest.mark.parametrize("parent_status", ["pending", "running"])
async def test_cancelling_a_parent_cancels_its_dependents_and_theirs(
    queue: Queue, db: asyncpg.Connection, parent_status: str
) -> None:
    first = await parent(queue, "first")
    child = await queue.enqueue(Echo(text="child"), depends_on=[first])
    grandchild = await queue.enqueue(Echo(text="grandchild"), depends_on=[child])
    if parent_status == "running":
        await start(db, first)

    assert await queue.cancel(first) is True

    assert await state(db, child) == cancelled(f"parent job {first} was cancelled")
    assert await state(db, grandchild) == cancelled(f"parent job {child} was cancelled")


async def test_cancelling_a_blocked_dependent_leaves_its_parent_alone(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first = await parent(queue, "first")
    child = await queue.enqueue(Echo(text="child"), depends_on=[first])
    grandchild = await queue.enqueue(Echo(text="grandchild"), depends_on=[child])

    assert await queue.cancel(child) is True

    assert await state(db, child) == ("cancelled", False, None)
    assert await state(db, grandchild) == cancelled(f"parent job {child} was cancelled")
    assert await state(db, first) == RELEASED
    await run(db, first, "complete")
    assert (await state(db, child))[0] == "cancelled"
    assert await claimable(db, "tests") == []


@pytest.mark.parametrize("deleted", ["pending", "completed"])
async def test_deleting_a_parent_cancels_its_dependents(
    queue: Queue, db: asyncpg.Connection, deleted: str
) -> None:
    doomed, other = await parent(queue, "doomed"), await parent(queue, "other")
    if deleted == "completed":
        await run(db, doomed, "complete")
    child = await queue.enqueue(Echo(text="child"), depends_on=[doomed, other])

    assert await queue.clear("doomed", status=deleted) == 1

    assert await state(db, child) == cancelled(f"parent job {doomed} was deleted")
    await run(db, other, "complete")
    assert (await state(db, child))[0] == "cancelled"


@pytest.mark.parametrize("ending", ["fail", "cancel"])
async def test_run_anyway_dependent_is_released_when_its_parent_ends_badly(
    queue: Queue, db: asyncpg.Connection, ending: str
) -> None:
    first = await parent(queue, "first")
    child = await queue.enqueue(Echo(text="child"), depends_on=[first], run_anyway=True)
    grandchild = await queue.enqueue(Echo(text="grandchild"), depends_on=[child])

    if ending == "fail":
        await run(db, first, "fail")
    else:
        await queue.cancel(first)

    assert await state(db, child) == RELEASED
    assert await state(db, grandchild) == BLOCKED  # waits for the child, which will run
    assert await claimable(db, "tests") == [child]


async def test_retrying_a_cancelled_dependent_runs_it_without_waiting_for_its_parents(
    queue: Queue, db: asyncpg.Connection
) -> None:
    # Documented in docs/guides/dependencies.md ("Retrying a cancelled dependent runs it without
    # waiting for its parents"): retry is the operator overriding the dependency.
    first = await parent(queue, "first")
    child = await queue.enqueue(Echo(text="child"), depends_on=[first])
    await queue.cancel(child)

    assert await queue.retry(child) is True

    assert await state(db, child) == RELEASED
    assert await claimable(db, "tests") == [child]


# --- chain and group ----------------------------------------------------------------------------


async def test_chain_enqueues_each_job_after_the_previous_one(
    queue: Queue, db: asyncpg.Connection
) -> None:
    ids = await queue.chain(Echo(text="a"), Echo(text="b"), Echo(text="c"))

    a, b, c = ids
    rows = await db.fetch("SELECT id, depends_on, blocked FROM pgqueue.jobs ORDER BY id")
    assert [(r["id"], r["depends_on"], r["blocked"]) for r in rows] == [
        (a, None, False),
        (b, [a], True),
        (c, [b], True),
    ]
    [claimed] = await db.fetch(
        "SELECT id FROM pgqueue.claim_jobs(ARRAY['tests'], $1, $2, 10)", registry.names(), uuid4()
    )
    assert claimed["id"] == a
    worker_id = await db.fetchval("SELECT worker_id FROM pgqueue.jobs WHERE id = $1", a)
    await complete(db, a, worker_id)
    assert (await state(db, b), await state(db, c)) == (RELEASED, BLOCKED)


async def test_chain_or_group_of_nothing_is_refused(queue: Queue, db: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="chain\\(\\) needs at least one job"):
        await queue.chain()
    with pytest.raises(ValueError, match="group\\(\\) needs at least one job"):
        await queue.group([])
    with pytest.raises(ValueError, match="group\\(\\) needs at least one job"):
        await queue.group([]).then(Echo(text="x"))

    assert await count(db) == 0


async def test_group_enqueues_jobs_with_no_dependencies_between_them(
    queue: Queue, db: asyncpg.Connection
) -> None:
    ids = await queue.group([Echo(text="a"), Echo(text="b")])

    assert await claimable(db, "tests") == sorted(ids)
    assert [(await queue.get_job(job_id)).depends_on for job_id in ids] == [None, None]


@pytest.mark.parametrize("run_anyway", [False, True])
async def test_group_then_enqueues_a_job_that_waits_for_every_job_of_the_group(
    queue: Queue, db: asyncpg.Connection, run_anyway: bool
) -> None:
    a, b, c = await queue.group([Echo(text="a"), Echo(text="b")]).then(
        Echo(text="c"), run_anyway=run_anyway
    )

    row = await db.fetchrow(
        "SELECT depends_on, blocked, run_anyway FROM pgqueue.jobs WHERE id = $1", c
    )
    assert tuple(row or ()) == ([a, b], True, run_anyway)
    assert await claimable(db, "tests") == [a, b]


async def test_dispatch_after_sets_the_parents_and_run_anyway(
    queue: Queue, db: asyncpg.Connection
) -> None:
    first, second = await parent(queue, "first"), await parent(queue, "second")

    child = await queue.dispatch(Echo(text="child")).after(first, second, run_anyway=True)

    row = await db.fetchrow(
        "SELECT depends_on, blocked, run_anyway FROM pgqueue.jobs WHERE id = $1", child
    )
    assert tuple(row or ()) == ([first, second], True, True)


async def test_chain_and_group_commit_or_roll_back_with_the_callers_transaction(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    app = await asyncpg.connect(dsn)
    try:
        with pytest.raises(RuntimeError, match="rolled back"):  # noqa: PT012
            async with app.transaction():
                await queue.chain(Echo(text="a"), Echo(text="b"), connection=app)
                await queue.group([Echo(text="c")], connection=app).then(Echo(text="d"))
                await queue.group([Echo(text="e")], connection=app)
                raise RuntimeError("rolled back")
        assert await count(db) == 0

        async with app.transaction():
            chained = await queue.chain(Echo(text="a"), Echo(text="b"), connection=app)
            grouped = await queue.group([Echo(text="c")], connection=app).then(Echo(text="d"))
            assert await count(db) == 0  # not visible before the caller commits
    finally:
        await app.close()
    rows = await db.fetch("SELECT id, depends_on FROM pgqueue.jobs ORDER BY id")
    assert [(r["id"], r["depends_on"]) for r in rows] == [
        (chained[0], None),
        (chained[1], [chained[0]]),
        (grouped[0], None),
        (grouped[1], [grouped[0]]),
    ]


async def test_chain_or_group_failing_part_way_writes_none_of_it(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    # A constraint of this test's database makes the insert of a job with text 'boom' fail,
    # after the jobs before it were written in the same transaction.
    await db.execute(
        "ALTER TABLE pgqueue.jobs ADD CONSTRAINT no_boom CHECK (payload ->> 'text' <> 'boom')"
    )

    with pytest.raises(asyncpg.CheckViolationError):
        await queue.chain(Echo(text="a"), Echo(text="b"), Echo(text="boom"))
    with pytest.raises(asyncpg.CheckViolationError):
        await queue.group([Echo(text="a"), Echo(text="b")]).then(Echo(text="boom"))
    assert await count(db) == 0

    app = await asyncpg.connect(dsn)
    try:
        async with app.transaction():  # the caller's transaction goes on after the failed chain
            kept = await queue.enqueue(Echo(text="kept"), connection=app)
            with pytest.raises(asyncpg.CheckViolationError):
                await queue.chain(Echo(text="a"), Echo(text="boom"), connection=app)
    finally:
        await app.close()
    assert [row["id"] for row in await db.fetch("SELECT id FROM pgqueue.jobs")] == [kept]


# --- prune ------------------------------------------------------------------------------------


async def test_prune_keeps_finished_parents_while_a_dependent_is_blocked_on_them(
    queue: Queue, db: asyncpg.Connection
) -> None:
    done, failed, pending = [await parent(queue, name) for name in ("done", "failed", "pending")]
    unrelated = await parent(queue, "unrelated")
    for job_id, outcome in ((done, "complete"), (failed, "fail"), (unrelated, "complete")):
        await run(db, job_id, outcome)
    child = await queue.enqueue(
        Echo(text="child"), depends_on=[done, failed, pending], run_anyway=True
    )
    await db.execute(
        "UPDATE pgqueue.jobs SET finished_at = now() - interval '30 days'"
        " WHERE finished_at IS NOT NULL"
    )

    deleted = await queue.prune()

    assert deleted == {JobStatus.COMPLETED: 1, JobStatus.FAILED: 0, JobStatus.CANCELLED: 0}
    assert await count(db) == 4  # only the unrelated job went
    await run(db, pending, "complete")
    assert await state(db, child) == RELEASED
    await db.execute(
        "UPDATE pgqueue.jobs SET finished_at = now() - interval '30 days' WHERE id = $1", pending
    )

    assert await queue.prune(Retention()) == {
        JobStatus.COMPLETED: 2,
        JobStatus.FAILED: 1,
        JobStatus.CANCELLED: 0,
    }
    assert [row["id"] for row in await db.fetch("SELECT id FROM pgqueue.jobs")] == [child]


# --- races ------------------------------------------------------------------------------------


async def complete_in_transaction(
    connection: asyncpg.Connection, job_id: int, worker_id: UUID
) -> list[int]:
    async with connection.transaction():
        return await complete(connection, job_id, worker_id)


async def test_parents_completed_concurrently_release_their_dependent_exactly_once(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    rounds = 20
    async with connections(dsn, 2) as (one, other), notifications(dsn) as received:
        for n in range(rounds):
            first, second = await parent(queue, "first"), await parent(queue, "second")
            child = await queue.enqueue(
                Echo(text="child"), depends_on=[first, second], queue=f"children-{n}"
            )
            first_worker, second_worker = await start(db, first), await start(db, second)

            done = await asyncio.gather(
                complete_in_transaction(one, first, first_worker),
                complete_in_transaction(other, second, second_worker),
            )

            assert done == [[first], [second]]
            assert await state(db, child) == RELEASED, f"round {n}"
            assert await claimable(db, f"children-{n}") == [child]
        notified = await delivered(db, received)
    # The release is the only notification of a child's queue: one per child.
    releases = Counter(name for name in notified if name.startswith("children-"))
    assert releases == {f"children-{n}": 1 for n in range(rounds)}


@pytest.mark.parametrize(
    ("first_outcome", "second_outcome", "expected"),
    [
        ("complete", "complete", "released"),
        ("complete", "fail", "cancelled by second"),
        ("fail", "complete", "cancelled by first"),
    ],
)
async def test_parents_finishing_in_overlapping_transactions_settle_the_dependent_once(
    queue: Queue,
    db: asyncpg.Connection,
    dsn: str,
    first_outcome: Outcome,
    second_outcome: Outcome,
    expected: str,
) -> None:
    """The first transaction has finished its parent and settled the dependent (seeing the
    other parent still running) but not committed; the second finishes the other parent and
    must wait for the first, then see its outcome."""
    first, second = await parent(queue, "first"), await parent(queue, "second")
    child = await queue.enqueue(Echo(text="child"), depends_on=[first, second])
    first_worker, second_worker = await start(db, first), await start(db, second)

    async with connections(dsn, 2) as (one, other), notifications(dsn) as received:
        transaction = one.transaction()
        await transaction.start()
        await finish(one, first, first_worker, first_outcome)
        finishing = asyncio.create_task(finish(other, second, second_worker, second_outcome))
        await until_lock_waiters(db, 1)  # the second waits on the dependent's row
        assert await state(db, child) == BLOCKED  # nothing is visible yet
        await transaction.commit()
        await finishing
        notified = await delivered(db, received)

    assert (
        await state(db, child)
        == {
            "released": RELEASED,
            "cancelled by second": cancelled(f"parent job {second} failed"),
            "cancelled by first": cancelled(f"parent job {first} failed"),
        }[expected]
    )
    assert notified.count("tests") == (1 if expected == "released" else 0)


@pytest.mark.parametrize(("outcome", "expected"), [("complete", "released"), ("fail", "cancelled")])
async def test_enqueue_of_a_dependent_waits_for_its_parent_finishing_and_sees_the_outcome(
    queue: Queue, db: asyncpg.Connection, dsn: str, outcome: Outcome, expected: str
) -> None:
    first = await parent(queue, "first")
    worker_id = await start(db, first)

    async with connections(dsn, 1) as (finisher,):
        transaction = finisher.transaction()
        await transaction.start()
        await finish(finisher, first, worker_id, outcome)  # not committed yet
        enqueueing = asyncio.create_task(queue.enqueue(Echo(text="child"), depends_on=[first]))
        await until_lock_waiters(db, 1)  # the enqueue waits on the parent's row
        await transaction.commit()
        child = await enqueueing

    assert await state(db, child) == (
        RELEASED if expected == "released" else cancelled(f"parent job {first} failed")
    )


@pytest.mark.parametrize(("outcome", "expected"), [("complete", "released"), ("fail", "cancelled")])
async def test_parent_finishing_while_a_dependent_is_being_enqueued_waits_and_settles_it(
    queue: Queue, db: asyncpg.Connection, dsn: str, outcome: Outcome, expected: str
) -> None:
    first = await parent(queue, "first")
    worker_id = await start(db, first)

    async with connections(dsn, 2) as (app, finisher):
        transaction = app.transaction()
        await transaction.start()
        child = await queue.enqueue(Echo(text="child"), depends_on=[first], connection=app)
        finishing = asyncio.create_task(finish(finisher, first, worker_id, outcome))
        await until_lock_waiters(db, 1)  # the parent's finish waits for the enqueue to commit
        assert await count(db) == 1
        await transaction.commit()
        await finishing

    assert await state(db, child) == (
        RELEASED if expected == "released" else cancelled(f"parent job {first} failed")
    )


async def test_parent_completes_once_a_dependent_enqueue_waiting_on_it_rolls_back(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    first = await parent(queue, "first")
    worker_id = await start(db, first)

    async with connections(dsn, 2) as (app, finisher):
        transaction = app.transaction()
        await transaction.start()
        await queue.enqueue(Echo(text="child"), depends_on=[first], connection=app)
        completing = asyncio.create_task(complete(finisher, first, worker_id))
        await until_lock_waiters(db, 1)
        await transaction.rollback()
        assert await completing == [first]

    assert await count(db) == 1
    assert (await state(db, first))[0] == "completed"


async def test_dependents_enqueued_while_their_parent_completes_are_never_left_blocked(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    async with connections(dsn, 1) as (finisher,):
        for n in range(20):
            first = await parent(queue, "first")
            worker_id = await start(db, first)

            done, child = await asyncio.gather(
                complete_in_transaction(finisher, first, worker_id),
                queue.enqueue(Echo(text="child"), depends_on=[first]),
            )

            assert done == [first]
            assert await state(db, child) == RELEASED, f"round {n}"


@pytest.mark.parametrize("first_to_commit", ["failure", "enqueue"])
async def test_grandchild_enqueued_during_a_cascade_is_cancelled_with_the_chain(
    queue: Queue, db: asyncpg.Connection, dsn: str, first_to_commit: str
) -> None:
    """a fails, which cancels its blocked child b, while c is being enqueued to depend on b: in
    whichever order the two transactions commit, c ends cancelled, never blocked for ever."""
    a = await parent(queue, "a")
    b = await queue.enqueue(Echo(text="b"), depends_on=[a])
    worker_id = await start(db, a)

    async with connections(dsn, 2) as (holding, other):
        transaction = holding.transaction()
        await transaction.start()
        if first_to_commit == "failure":
            assert await fail(holding, a, worker_id) == "failed"
            waiting = asyncio.create_task(
                queue.enqueue(Echo(text="c"), depends_on=[b], connection=other)
            )
        else:
            c = await queue.enqueue(Echo(text="c"), depends_on=[b], connection=holding)
            waiting = asyncio.create_task(fail(other, a, worker_id))
        await until_lock_waiters(db, 1)  # the later one waits on b's row
        await transaction.commit()
        outcome = await waiting
    if first_to_commit == "failure":
        c = outcome
    else:
        assert outcome == "failed"

    assert await state(db, b) == cancelled(f"parent job {a} failed")
    assert await state(db, c) == cancelled(f"parent job {b} was cancelled")
