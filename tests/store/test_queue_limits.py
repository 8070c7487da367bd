"""Queue pause and limits in the SQL: what pgqueue.claim_jobs hands out, what
seconds_until_next_job tells an idle worker, the state kept in pgqueue.queues, the NOTIFY a
freed slot sends, queue_overview, and QueueLimit's checks. No worker runs here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from pgqueue import InvalidQueueName, JobStatus, Queue, QueueLimit
from pgqueue.rows import ClaimedJob
from pgqueue.sql import queries
from tests.factories import eventually
from tests.jobs import Echo, Note

ECHO = Echo.job_options.name
NOTE = Note.job_options.name
DAY = timedelta(days=1)  # a rate window no test run straddles (it would need to cross 00:00 UTC)


async def claim(
    queue: Queue,
    worker_id: UUID | None = None,
    *,
    max_jobs: int = 100,
    queues: Sequence[str] = ("limited",),
    job_types: Sequence[str] = (ECHO,),
) -> list[ClaimedJob]:
    async with queue.store.pool.acquire() as connection:
        return await queue.store.claim_jobs(
            queues=queues,
            job_types=job_types,
            worker_id=worker_id or uuid4(),
            max_jobs=max_jobs,
            connection=connection,
        )


async def seconds_until(queue: Queue, *queues: str) -> float | None:
    return await queue.store.seconds_until_next_job(queues=queues or ("limited",), job_types=[ECHO])


async def running_in(db: asyncpg.Connection, queue_name: str) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM pgqueue.jobs WHERE queue = $1 AND status = 'running'",
            queue_name,
        )
    )


async def settings_of(db: asyncpg.Connection, queue_name: str) -> dict[str, Any] | None:
    row = await db.fetchrow(
        "SELECT paused, concurrency_limit, rate_limit, rate_period, rate_window_start,"
        " rate_window_count FROM pgqueue.queues WHERE name = $1",
        queue_name,
    )
    return None if row is None else dict(row)


async def complete(queue: Queue, jobs: Sequence[ClaimedJob], worker_id: UUID) -> list[int]:
    async with queue.store.pool.acquire() as connection:
        return await queue.store.complete_jobs(
            ids=[job.id for job in jobs],
            attempts=[job.attempt for job in jobs],
            results=[None for _ in jobs],
            worker_id=worker_id,
            connection=connection,
        )


async def fail(queue: Queue, job: ClaimedJob, worker_id: UUID) -> JobStatus | None:
    """A failed attempt as the executor records it; retried in an hour (not in this test)."""
    return await queue.store.fail_job(
        id=job.id,
        attempt=job.attempt,
        worker_id=worker_id,
        error=json.dumps({"attempt": job.attempt, "type": "RuntimeError", "message": "boom"}),
        last_error="RuntimeError: boom",
        retry_delay=timedelta(hours=1),
        permanent=False,
        default_max_attempts=4,
    )


# --- priority ----------------------------------------------------------------------------------


@pytest.mark.parametrize("limits", [None, {"concurrency": 50}, {"rate": 50, "per": DAY}])
async def test_claim_order_is_priority_then_run_at_then_id_in_open_and_limited_queues(
    queue: Queue, db: asyncpg.Connection, limits: dict[str, Any] | None
) -> None:
    if limits is not None:  # a limited queue is claimed by the second, locked, path
        await queue.set_queue_limits("limited", **limits)
    now = await db.fetchval("SELECT now()")
    same_time = now - timedelta(minutes=5)
    ids = {
        "low, oldest": await queue.enqueue(
            Echo(text="a"), queue="limited", priority=-3, run_at=now - timedelta(hours=3)
        ),
        "default": await queue.enqueue(
            Echo(text="b"), queue="limited", run_at=now - timedelta(hours=2)
        ),
        "high, newer": await queue.dispatch(Echo(text="c"), queue="limited")
        .with_priority(7)
        .with_run_at(same_time),
        "high, older": await queue.enqueue(
            Echo(text="d"), queue="limited", priority=7, run_at=now - timedelta(hours=1)
        ),
    }
    # Same priority, same run_at: the lower id first.
    tied = await queue.enqueue_batch(
        [Echo(text="e"), Echo(text="f")], queue="limited", priority=7, run_at=same_time
    )
    worker_id = uuid4()

    order = [job.id for _ in range(6) for job in await claim(queue, worker_id, max_jobs=1)]

    assert order == [
        ids["high, older"],
        *sorted([ids["high, newer"], *tied]),
        ids["default"],
        ids["low, oldest"],
    ]
    assert await claim(queue, worker_id) == []


# --- pause ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("limited", [False, True], ids=["open", "limited"])
async def test_paused_queue_is_never_claimed_and_resume_makes_its_jobs_claimable(
    queue: Queue, db: asyncpg.Connection, limited: bool
) -> None:
    if limited:
        await queue.set_queue_limits("emails", concurrency=10, rate=100, per=DAY)
    emails = await queue.enqueue_batch([Echo(text="mail"), Echo(text="mail")], queue="emails")
    other = await queue.enqueue(Echo(text="report"), queue="reports")

    await queue.pause_queue("emails")
    more = await queue.enqueue(Echo(text="mail"), queue="emails")  # enqueueing goes on
    claimed = await claim(queue, queues=["emails", "reports"])

    assert [job.id for job in claimed] == [other]
    assert (await settings_of(db, "emails") or {})["paused"] is True
    statuses = await db.fetch(
        "SELECT DISTINCT status::text FROM pgqueue.jobs WHERE queue = 'emails'"
    )
    assert [row["status"] for row in statuses] == ["pending"]

    await queue.resume_queue("emails")

    assert sorted(job.id for job in await claim(queue, queues=["emails"])) == [*emails, more]
    assert (await settings_of(db, "emails") or {})["paused"] is False


async def test_pause_creates_the_queue_row_and_keeps_limits_which_keep_the_pause(
    queue: Queue, db: asyncpg.Connection
) -> None:
    assert await settings_of(db, "emails") is None  # no row: open and unlimited

    await queue.pause_queue("emails")
    assert await settings_of(db, "emails") == {
        "paused": True,
        "concurrency_limit": None,
        "rate_limit": None,
        "rate_period": None,
        "rate_window_start": None,
        "rate_window_count": 0,
    }
    await queue.set_queue_limits("emails", concurrency=3, rate=100, per=60)
    await queue.pause_queue("emails")  # twice is fine
    row = await settings_of(db, "emails") or {}
    assert (row["paused"], row["concurrency_limit"], row["rate_limit"], row["rate_period"]) == (
        True,
        3,
        100,
        timedelta(minutes=1),
    )

    await queue.set_queue_limits("emails", concurrency=5)  # a limit not given is removed
    row = await settings_of(db, "emails") or {}
    assert (row["paused"], row["concurrency_limit"], row["rate_limit"], row["rate_period"]) == (
        True,
        5,
        None,
        None,
    )

    await queue.resume_queue("emails")
    await queue.resume_queue("emails")
    await queue.set_queue_limits("emails")  # no limits at all
    row = await settings_of(db, "emails") or {}
    assert (row["paused"], row["concurrency_limit"], row["rate_limit"], row["rate_period"]) == (
        False,
        None,
        None,
        None,
    )
    assert await db.fetchval("SELECT count(*) FROM pgqueue.queues") == 1


async def test_seconds_until_next_job_ignores_paused_queues(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue(Echo(text="due"), queue="emails")
    await queue.pause_queue("emails")
    sql = queries["seconds_until_next_job"].sql

    # Only a paused queue's due job: nothing to wake up for (else an idle worker would spin).
    assert await db.fetchval(sql, ["emails"], [ECHO]) is None
    assert await seconds_until(queue, "emails") is None

    await queue.enqueue(Echo(text="later"), queue="reports", delay=timedelta(hours=1))
    assert 3500 < (await seconds_until(queue, "emails", "reports") or 0) <= 3600

    await queue.resume_queue("emails")
    assert await seconds_until(queue, "emails", "reports") == 0


# --- concurrency limits --------------------------------------------------------------------------


async def test_concurrency_limit_caps_running_jobs_and_each_finish_frees_one_slot(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.set_queue_limits("limited", concurrency=3)
    await queue.enqueue_batch([Echo(text=str(n)) for n in range(10)], queue="limited")
    first, second = uuid4(), uuid4()

    held = await claim(queue, first, max_jobs=10)
    assert len(held) == 3
    assert await claim(queue, second, max_jobs=10) == []  # cluster-wide, not per worker
    assert await running_in(db, "limited") == 3
    # At the limit, due jobs are not worth waking for: a finishing job NOTIFYs instead.
    assert await seconds_until(queue) is None

    assert await complete(queue, held[:1], first) == [held[0].id]
    assert await seconds_until(queue) == 0
    assert len(await claim(queue, second, max_jobs=10)) == 1
    assert await fail(queue, held[1], first) == JobStatus.PENDING  # retried later
    assert len(await claim(queue, second, max_jobs=10)) == 1
    assert await running_in(db, "limited") == 3
    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs WHERE status = 'completed'") == 1


async def test_running_jobs_of_every_type_count_toward_the_limit(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.set_queue_limits("limited", concurrency=2)
    await queue.enqueue_batch([Note(log_path="/dev/null")] * 2, queue="limited")
    await queue.enqueue_batch([Echo(text="x")] * 2, queue="limited")

    assert len(await claim(queue, job_types=[NOTE])) == 2
    assert await claim(queue, job_types=[ECHO]) == []  # a worker that only knows Echo waits


async def test_concurrent_claims_from_many_sessions_never_exceed_the_limit(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    await queue.set_queue_limits("limited", concurrency=4)
    await queue.enqueue_batch([Echo(text=str(n)) for n in range(40)], queue="limited")
    await queue.enqueue_batch([Echo(text="open")] * 6, queue="open")
    sessions = [await asyncpg.connect(dsn) for _ in range(12)]
    sql = queries["claim_jobs"].sql
    opened = 0
    try:
        for round_ in range(5):
            claims = await asyncio.gather(
                *(
                    session.fetch(sql, ["limited", "open"], [ECHO], uuid4(), 3)
                    for session in sessions
                )
            )
            rows = [row for rows in claims for row in rows]
            assert sum(row["queue"] == "limited" for row in rows) == 4, f"round {round_}"
            opened += sum(row["queue"] == "open" for row in rows)
            assert await running_in(db, "limited") == 4
            await db.execute(  # every claimed job finishes; the next round has 4 free slots
                "UPDATE pgqueue.jobs SET status = 'completed', finished_at = now()"
                " WHERE queue = 'limited' AND status = 'running'"
            )
    finally:
        for session in sessions:
            await session.close()
    assert opened == 6  # an open queue claimed beside it is not held back
    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs WHERE status = 'pending'") == 20


async def test_a_job_finishing_in_a_concurrency_limited_queue_notifies_that_queue(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    await queue.set_queue_limits("limited", concurrency=5)
    await queue.enqueue_batch([Echo(text="l")] * 3, queue="limited")
    await queue.enqueue(Echo(text="o"), queue="open")
    worker_id = uuid4()
    limited = await claim(queue, worker_id)
    [opened] = await claim(queue, worker_id, queues=["open"])

    listener = await asyncpg.connect(dsn)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("pgqueue_jobs", lambda *args: heard.put_nowait(args[3]))

    async def heard_until(marker: str) -> list[str]:
        """Notifications arrive in commit order: all those before ``marker``."""
        await db.execute("SELECT pg_notify('pgqueue_jobs', $1)", marker)
        got: list[str] = []
        while (payload := await asyncio.wait_for(heard.get(), 10)) != marker:
            got.append(payload)
        return got

    try:
        await heard_until("start")
        await complete(queue, [opened], worker_id)  # an unlimited queue: nobody waits on it
        assert await fail(queue, limited[0], worker_id) == JobStatus.PENDING
        await complete(queue, limited[1:], worker_id)  # two at once: one notification
        assert await heard_until("end") == ["limited", "limited"]
    finally:
        await listener.close()


# --- rate limits ---------------------------------------------------------------------------------


async def test_rate_limit_starts_at_most_rate_jobs_per_window_and_keeps_count_in_the_row(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.set_queue_limits("limited", rate=5, per=DAY)
    await queue.enqueue_batch([Echo(text=str(n)) for n in range(12)], queue="limited")
    worker_id = uuid4()

    assert len(await claim(queue, worker_id, max_jobs=3)) == 3
    row = await settings_of(db, "limited") or {}
    assert row["rate_window_count"] == 3
    rest = await claim(queue, worker_id, max_jobs=10)
    assert len(rest) == 2
    await complete(queue, rest, worker_id)  # finishing frees no rate: starts are what count
    assert await claim(queue, uuid4(), max_jobs=10) == []

    row = await settings_of(db, "limited") or {}
    window = await db.fetchval(  # windows are aligned on the database clock
        "SELECT to_timestamp(floor(extract(epoch FROM now()) / 86400) * 86400)"
    )
    assert (row["rate_window_start"], row["rate_window_count"]) == (window, 5)
    # The rest waits for the next window: an idle worker sleeps until then.
    left = await db.fetchval(
        "SELECT extract(epoch FROM rate_window_start + rate_period - now())::float8"
        " FROM pgqueue.queues WHERE name = 'limited'"
    )
    assert await seconds_until(queue) == pytest.approx(left, abs=1)

    # The next window (as if a day had passed): the count starts over.
    await db.execute(
        "UPDATE pgqueue.queues SET rate_window_start = rate_window_start - interval '1 day'"
        " WHERE name = 'limited'"
    )
    assert await seconds_until(queue) == 0
    assert len(await claim(queue, worker_id, max_jobs=10)) == 5
    row = await settings_of(db, "limited") or {}
    assert (row["rate_window_start"], row["rate_window_count"]) == (window, 5)
    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs WHERE status = 'pending'") == 2


async def test_rate_window_opens_on_the_database_clock_and_seconds_until_says_when(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.set_queue_limits("limited", rate=2, per=timedelta(seconds=1.5))
    await queue.enqueue_batch([Echo(text=str(n)) for n in range(5)], queue="limited")
    claimed: list[ClaimedJob] = []

    async def claim_more() -> int:
        claimed.extend(await claim(queue))
        wait = await seconds_until(queue)  # none left, or the next window's start (or now)
        assert wait is None if len(claimed) == 5 else 0 <= (wait or 0) <= 1.5
        return len(claimed)

    await eventually(claim_more, until=lambda n: n == 5, within=10)

    started = await db.fetch(
        "SELECT to_timestamp(floor(extract(epoch FROM started_at) / 1.5) * 1.5) AS window,"
        " count(*) AS started FROM pgqueue.jobs GROUP BY 1 ORDER BY 1"
    )
    assert [row["started"] for row in started] == [2, 2, 1]
    # The row names the last window: a multiple of the period since the epoch.
    assert await db.fetchrow(
        "SELECT mod(extract(epoch FROM rate_window_start), 1.5) AS offset,"
        " rate_window_count AS started FROM pgqueue.queues WHERE name = 'limited'"
    ) == (0, 1)


async def test_concurrency_and_rate_limits_hold_together(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.set_queue_limits("limited", concurrency=2, rate=3, per=DAY)
    await queue.enqueue_batch([Echo(text=str(n)) for n in range(6)], queue="limited")
    worker_id = uuid4()

    first = await claim(queue, worker_id)
    assert len(first) == 2  # the concurrency limit binds first
    await complete(queue, first, worker_id)
    assert len(await claim(queue, worker_id)) == 1  # two slots free, one start left
    assert await claim(queue, worker_id) == []
    assert (await settings_of(db, "limited") or {})["rate_window_count"] == 3


async def test_a_claim_that_reaches_the_queue_late_does_not_double_the_next_window(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    """In a worker the late claim is one that began before the window changed and waited for
    another limited queue's row lock; here a transaction pins its now() instead."""
    period = 1.0
    await queue.set_queue_limits("r", rate=3, per=period)
    await queue.enqueue_batch([Echo(text=str(n)) for n in range(20)], queue="r")

    async def clock() -> float:
        return float(await db.fetchval("SELECT extract(epoch FROM clock_timestamp())"))

    late = await asyncpg.connect(dsn)
    try:
        started = await eventually(clock, until=lambda now: 0.1 < now % period < 0.5)
        async with late.transaction():
            await late.execute("SELECT now()")  # the late claim's now(): in this window
            boundary = (started // period + 1) * period
            await eventually(clock, until=lambda now: now > boundary + 0.05, within=5)
            assert len(await claim(queue, queues=["r"])) == 3  # the new window's 3 starts
            await late.fetch(queries["claim_jobs"].sql, ["r"], [ECHO], uuid4(), 10)
        await claim(queue, queues=["r"])  # the new window, once more

        per_window = await db.fetch(
            "SELECT count(*) AS n FROM pgqueue.jobs WHERE started_at IS NOT NULL"
            " GROUP BY floor(extract(epoch FROM started_at) / $1)",
            period,
        )
        assert max(row["n"] for row in per_window) <= 3
    finally:
        await late.close()


async def test_concurrent_claims_of_several_limited_queues_never_deadlock(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    names = ["a", "b", "c"]
    elsewhere = uuid4()
    for name in names:  # each at its limit, with jobs waiting: every claim looks at every row
        await queue.set_queue_limits(name, concurrency=1)
        await queue.enqueue_batch([Echo(text=name)] * 2, queue=name)
        assert len(await claim(queue, elsewhere, queues=[name], max_jobs=1)) == 1
    sessions = [await asyncpg.connect(dsn) for _ in range(8)]
    errors: list[str] = []
    deadline = asyncio.get_running_loop().time() + 2

    async def keep_claiming(session: asyncpg.Connection) -> None:
        while not errors and asyncio.get_running_loop().time() < deadline:
            try:
                claimed = await session.fetch(queries["claim_jobs"].sql, names, [ECHO], uuid4(), 10)
            except asyncpg.PostgresError as error:
                errors.append(f"{type(error).__name__}: {error}")
            else:
                assert claimed == []

    try:
        await asyncio.gather(*(keep_claiming(session) for session in sessions))
    finally:
        for session in sessions:
            await session.close()
    assert errors == []


# --- queue_overview ------------------------------------------------------------------------------


async def test_queue_overview_shows_pause_limits_and_blocked_jobs(
    queue: Queue, db: asyncpg.Connection
) -> None:
    parent = await queue.enqueue(Echo(text="parent"), queue="limited")
    await queue.enqueue(Echo(text="child"), queue="limited", depends_on=[parent])
    await queue.enqueue(Echo(text="mail"), queue="emails")
    await queue.set_queue_limits("limited", concurrency=3, rate=100, per=60)
    await queue.pause_queue("emails")
    await queue.set_queue_limits("idle", rate=10, per=timedelta(milliseconds=500))

    overview = {row.queue: row for row in await queue.queue_overview()}

    assert sorted(overview) == ["emails", "idle", "limited"]  # settings alone list a queue
    settings = {
        name: (
            row.paused,
            row.concurrency_limit,
            row.rate_limit,
            row.rate_period,
            row.pending,
            row.blocked,
        )
        for name, row in overview.items()
    }
    assert settings == {
        "emails": (True, None, None, None, 1, 0),
        "idle": (False, None, 10, timedelta(milliseconds=500), 0, 0),
        "limited": (False, 3, 100, timedelta(minutes=1), 1, 1),
    }
    assert overview["idle"].oldest_pending_seconds is None


# --- QueueLimit and set_queue_limits: what they accept -------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate", "per"),
    [
        ("100/1m", 100, timedelta(minutes=1)),
        ("5/2s", 5, timedelta(seconds=2)),
        ("10/2.5", 10, timedelta(seconds=2.5)),
        ("3/500ms", 3, timedelta(milliseconds=500)),
        (" 7/1h ", 7, timedelta(hours=1)),
        ("1/1d", 1, timedelta(days=1)),
        ("2/.5s", 2, timedelta(milliseconds=500)),
    ],
)
def test_parse_rate(text: str, rate: int, per: timedelta) -> None:
    limit = QueueLimit.parse_rate(text)
    assert (limit.concurrency, limit.rate, limit.period) == (None, rate, per)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast", "must look like 100/1s"),
        ("100", "must look like 100/1s"),
        ("100/", "must look like 100/1s"),
        ("100/m", "must look like 100/1s"),
        ("/1s", "must look like 100/1s"),
        ("-1/1s", "must look like 100/1s"),
        ("1.5/1s", "must look like 100/1s"),
        ("100/1w", "must look like 100/1s"),
        ("100 / 1m", "must look like 100/1s"),
        ("0/1s", "rate limit must be an int from 1 to 2147483647, got 0"),
        ("5/0s", "rate period must be 1 ms to 10 years"),
        ("5/0.0000001", "rate period must be 1 ms to 10 years"),  # rounds to 0 microseconds
    ],
)
def test_parse_rate_rejects_bad_text_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QueueLimit.parse_rate(text)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency limit must be an int from 1 to 2147483647, got 0"),
        ({"concurrency": -2}, "concurrency limit must be an int from 1 to 2147483647"),
        ({"concurrency": True}, "concurrency limit must be an int from 1 to 2147483647, got True"),
        ({"concurrency": 2.5}, "concurrency limit must be an int from 1 to 2147483647, got 2.5"),
        ({"rate": 0}, "rate limit must be an int from 1 to 2147483647, got 0"),
        ({"rate": "10"}, "rate limit must be an int from 1 to 2147483647, got '10'"),
        ({"rate": 5, "per": 0}, "rate period must be 1 ms to 10 years"),
        ({"rate": 5, "per": timedelta(0)}, "rate period must be 1 ms to 10 years"),
        ({"rate": 5, "per": -1}, "rate period must be 1 ms to 10 years"),
    ],
)
async def test_set_queue_limits_rejects_bad_limits_and_writes_nothing(
    queue: Queue, db: asyncpg.Connection, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await queue.set_queue_limits("limited", **options)
    with pytest.raises(ValueError, match=message):
        QueueLimit(**options)
    assert await db.fetchval("SELECT count(*) FROM pgqueue.queues") == 0


async def test_bad_queue_names_are_refused_before_the_database(
    queue: Queue, db: asyncpg.Connection
) -> None:
    for action in (
        queue.pause_queue("no spaces"),
        queue.resume_queue(""),
        queue.set_queue_limits("x" * 64, concurrency=1),
    ):
        with pytest.raises(InvalidQueueName, match="is invalid"):
            await action
    assert await db.fetchval("SELECT count(*) FROM pgqueue.queues") == 0
