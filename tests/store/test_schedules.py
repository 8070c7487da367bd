"""Schedules against a real database: the Queue API round trip read back from
pgqueue.schedules, bad input rejected with nothing written, code-declared names kept apart,
enqueue_schedule_ticks under concurrency, and what a Scheduler pass enqueues for ticks that came
due in the past (missed policies, pause/resume, time zones).

Ticks in the past are made by moving created_at/last_tick back with SQL, so no test waits for
the clock except where a tick must really come due while a scheduler runs (one second)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from pgqueue import ConfigurationError, InvalidJob, Job, Queue, ScheduleNotFound, Worker
from pgqueue.cron import MISSED_AFTER
from pgqueue.records import MissedTicks
from pgqueue.registry import Registry
from pgqueue.schedule import build_schedule
from pgqueue.worker.scheduler import Scheduler
from tests.factories import eventually, running
from tests.jobs import Echo

ECHO = Echo.job_options.name
POLL = timedelta(seconds=5)


class Unregistered(Job):
    """No handle(): never registered, so it cannot be scheduled."""

    text: str


def scheduler(queue: Queue, *declared: Any) -> Scheduler:
    return Scheduler(queue.store, declared=list(declared), poll_interval=POLL)


async def db_now(db: asyncpg.Connection) -> datetime:
    value: datetime = await db.fetchval("SELECT now()")
    return value


async def schedule_row(db: asyncpg.Connection, name: str) -> dict[str, Any] | None:
    row = await db.fetchrow(
        "SELECT name, cron, timezone, job_type, payload::text AS payload, queue, priority,"
        " max_attempts, missed, paused, in_code, last_tick, created_at, updated_at"
        " FROM pgqueue.schedules WHERE name = $1",
        name,
    )
    return None if row is None else dict(row)


async def ticks_of(db: asyncpg.Connection, name: str) -> list[datetime]:
    rows = await db.fetch(
        "SELECT schedule_tick FROM pgqueue.jobs WHERE schedule_name = $1 ORDER BY schedule_tick",
        name,
    )
    return [row["schedule_tick"] for row in rows]


async def backdate(db: asyncpg.Connection, name: str, by: timedelta) -> None:
    """Make the schedule look created ``by`` ago, never having ticked."""
    await db.execute(
        "UPDATE pgqueue.schedules SET created_at = created_at - $2::interval, last_tick = NULL"
        " WHERE name = $1",
        name,
        by,
    )


def quiet_time_of_day(now: datetime, zone: str) -> time:
    """A daytime time of day at least two hours away from ``now``'s in ``zone``: a daily tick
    at it cannot come due while the test runs, nor fall in a DST gap or fold (those are at
    night)."""
    local = now.astimezone(ZoneInfo(zone))
    minute_of_day = local.hour * 60 + local.minute
    for candidate in (time(11, 45), time(20, 15)):
        distance = abs(minute_of_day - (candidate.hour * 60 + candidate.minute))
        if min(distance, 24 * 60 - distance) >= 120:
            return candidate
    raise AssertionError("unreachable: the candidates are 8.5 hours apart")


def daily_ticks(at: time, zone: str, *, until: datetime, days: int) -> list[datetime]:
    """The last ``days`` instants at or before ``until`` when it is ``at`` in ``zone``, oldest
    first, computed with zoneinfo alone."""
    tz = ZoneInfo(zone)
    day: date = until.astimezone(tz).date()
    if datetime.combine(day, at, tzinfo=tz) > until:
        day -= timedelta(days=1)
    local = [datetime.combine(day - timedelta(days=k), at, tzinfo=tz) for k in range(days)]
    return sorted(instant.astimezone(UTC) for instant in local)


def daily_cron(at: time) -> str:
    return f"{at.minute} {at.hour} * * *"


# --- the Queue API round trip ------------------------------------------------------------------


async def test_add_schedule_stores_every_field(queue: Queue, db: asyncpg.Connection) -> None:
    before = await db_now(db)

    await queue.add_schedule(
        "nightly-report",
        "0  3 * * *",
        Echo(text="report", numbers=[1, 2]),
        timezone="Europe/Paris",
        missed="all",
        queue="reports",
        priority=7,
        max_retries=2,
    )

    row = await schedule_row(db, "nightly-report")
    assert row is not None
    assert {k: v for k, v in row.items() if k not in ("payload", "created_at", "updated_at")} == {
        "name": "nightly-report",
        "cron": "0 3 * * *",
        "timezone": "Europe/Paris",
        "job_type": ECHO,
        "queue": "reports",
        "priority": 7,
        "max_attempts": 3,
        "missed": "all",
        "paused": False,
        "in_code": False,
        "last_tick": None,
    }
    assert Echo.model_validate_json(row["payload"]) == Echo(text="report", numbers=[1, 2])
    assert before <= row["created_at"] == row["updated_at"] <= await db_now(db)


async def test_add_schedule_defaults_to_utc_latest_and_the_job_classes_queue(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.add_schedule("hourly", "@hourly", Echo(text="x"))

    row = await schedule_row(db, "hourly")
    assert row is not None
    assert (row["timezone"], row["missed"], row["queue"], row["priority"]) == (
        "UTC",
        "latest",
        Echo.job_options.queue,
        0,
    )
    assert row["max_attempts"] is None  # the worker's default applies


async def test_schedules_lists_every_schedule_with_its_next_tick(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.add_schedule("b-paris", "0 9 * * *", Echo(text="b"), timezone="Europe/Paris")
    await queue.add_schedule("a-minutely", "* * * * *", Echo(text="a"))
    before = await db_now(db)

    listed = await queue.schedules()

    after = await db_now(db)
    assert [record.name for record in listed] == ["a-minutely", "b-paris"]
    minutely, paris = listed
    assert minutely.payload == {"text": "a", "numbers": []}
    assert (minutely.paused, minutely.in_code, minutely.last_tick) == (False, False, None)
    assert minutely.next_tick is not None
    assert paris.next_tick is not None
    assert before < minutely.next_tick <= after + timedelta(minutes=1)
    assert minutely.next_tick.second == minutely.next_tick.microsecond == 0
    nine_in_paris = paris.next_tick.astimezone(ZoneInfo("Europe/Paris"))
    assert (nine_in_paris.hour, nine_in_paris.minute, nine_in_paris.second) == (9, 0, 0)
    assert before < paris.next_tick <= after + timedelta(days=1)


async def test_adding_again_updates_in_place_keeping_paused_and_last_tick(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.add_schedule("report", "0 3 * * *", Echo(text="old"))
    await queue.pause_schedule("report")
    await db.execute(
        "UPDATE pgqueue.schedules SET last_tick = '2026-01-01T03:00:00Z' WHERE name = 'report'"
    )
    first = await schedule_row(db, "report")

    await queue.add_schedule("report", "0 3 * * *", Echo(text="old"))
    unchanged = await schedule_row(db, "report")
    await queue.add_schedule("report", "30 4 * * 1", Echo(text="new"), priority=2)
    changed = await schedule_row(db, "report")

    assert unchanged == first  # the same schedule again: updated_at did not move either
    assert first is not None
    assert changed is not None
    assert await db.fetchval("SELECT count(*) FROM pgqueue.schedules") == 1
    assert (changed["cron"], changed["priority"]) == ("30 4 * * 1", 2)
    assert Echo.model_validate_json(changed["payload"]).text == "new"
    assert changed["paused"] is True
    assert changed["last_tick"] == first["last_tick"]
    assert changed["created_at"] == first["created_at"]
    assert changed["updated_at"] > first["updated_at"]


async def test_pause_resume_and_delete_round_trip(queue: Queue, db: asyncpg.Connection) -> None:
    await queue.add_schedule("report", "0 3 * * *", Echo(text="x"))

    await queue.pause_schedule("report")
    paused_row = await schedule_row(db, "report")
    [paused] = await queue.schedules()
    assert paused_row is not None
    assert paused_row["paused"] is True
    assert (paused.paused, paused.next_tick) == (True, None)
    assert paused_row["last_tick"] is None  # pausing skips nothing by itself

    before_resume = await db_now(db)
    await queue.resume_schedule("report")
    resumed_row = await schedule_row(db, "report")
    [resumed] = await queue.schedules()
    assert resumed_row is not None
    assert resumed_row["paused"] is False
    assert before_resume <= resumed_row["last_tick"] <= await db_now(db)
    assert resumed.next_tick is not None
    assert resumed.next_tick > resumed_row["last_tick"]

    await queue.delete_schedule("report")
    assert await schedule_row(db, "report") is None
    assert await queue.schedules() == []


@pytest.mark.parametrize("operation", ["pause_schedule", "resume_schedule", "delete_schedule"])
async def test_operations_on_an_unknown_schedule_raise_schedule_not_found(
    queue: Queue, db: asyncpg.Connection, operation: str
) -> None:
    await queue.add_schedule("exists", "0 3 * * *", Echo(text="x"))
    before = await schedule_row(db, "exists")

    with pytest.raises(ScheduleNotFound, match="no schedule named 'missing'") as raised:
        await getattr(queue, operation)("missing")

    assert raised.value.name == "missing"
    assert await schedule_row(db, "exists") == before


async def test_deleting_a_schedule_keeps_the_jobs_it_enqueued(
    queue: Queue, db: asyncpg.Connection
) -> None:
    at = quiet_time_of_day(await db_now(db), "UTC")
    await queue.add_schedule("daily", daily_cron(at), Echo(text="x"))
    await backdate(db, "daily", timedelta(days=3))
    await scheduler(queue).run_once()
    assert len(await ticks_of(db, "daily")) == 1

    await queue.delete_schedule("daily")

    assert len(await ticks_of(db, "daily")) == 1
    assert await db.fetchval("SELECT count(*) FROM pgqueue.schedules") == 0


# --- bad input writes nothing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cron", "job", "options", "problem"),
    [
        ("r", "* * * *", Echo(text="x"), {}, "has 4 fields"),
        ("r", "0 3 * * * * *", Echo(text="x"), {}, "has 7 fields"),
        ("r", "61 * * * *", Echo(text="x"), {}, "out of range"),
        ("r", "@sometimes", Echo(text="x"), {}, "'@sometimes'"),
        ("r", "0 3 * * *", Echo(text="x"), {"timezone": "Europe/Pariss"}, "'Europe/Pariss'"),
        ("r", "0 3 * * *", Echo(text="x"), {"missed": "first"}, "missed must be one of"),
        ("no spaces", "0 3 * * *", Echo(text="x"), {}, "schedule name 'no spaces'"),
        ("", "0 3 * * *", Echo(text="x"), {}, "schedule name ''"),
        ("r", "0 3 * * *", Echo(text="x"), {"queue": "bad queue"}, "bad queue"),
        ("r", "0 3 * * *", Echo(text="x"), {"priority": 10**6}, "priority"),
        ("r", "0 3 * * *", Echo(text="x"), {"max_retries": -1}, "max_retries"),
        ("r", "0 3 * * *", Unregistered(text="x"), {}, "not a registered job class"),
        ("r", "0 3 * * *", "Echo", {}, "not a registered job class"),
    ],
)
async def test_bad_input_raises_invalid_job_and_writes_nothing(
    queue: Queue,
    db: asyncpg.Connection,
    name: str,
    cron: str,
    job: Any,
    options: dict[str, Any],
    problem: str,
) -> None:
    with pytest.raises(InvalidJob) as raised:
        await queue.add_schedule(name, cron, job, **options)

    assert problem in str(raised.value)
    assert await db.fetchval("SELECT count(*) FROM pgqueue.schedules") == 0


async def test_a_bad_update_leaves_the_stored_schedule_as_it_was(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.add_schedule("report", "0 3 * * *", Echo(text="x"))
    before = await schedule_row(db, "report")

    with pytest.raises(InvalidJob, match="unknown time zone"):
        await queue.add_schedule("report", "0 4 * * *", Echo(text="y"), timezone="Mars/Base")

    assert await schedule_row(db, "report") == before


async def test_a_cron_that_never_ticks_is_rejected(queue: Queue, db: asyncpg.Connection) -> None:
    with pytest.raises(InvalidJob):
        await queue.add_schedule("never", "0 0 30 2 *", Echo(text="x"))

    assert await db.fetchval("SELECT count(*) FROM pgqueue.schedules") == 0


async def test_one_schedule_that_never_ticks_does_not_stop_the_others(
    queue: Queue, db: asyncpg.Connection
) -> None:
    at = quiet_time_of_day(await db_now(db), "UTC")
    await queue.add_schedule("a-never", "0 0 28 2 *", Echo(text="never"))
    # add_schedule refuses a cron that never ticks; one written by hand must not stop the rest
    await db.execute("UPDATE pgqueue.schedules SET cron = '0 0 30 2 *' WHERE name = 'a-never'")
    await queue.add_schedule("b-daily", daily_cron(at), Echo(text="daily"))
    await backdate(db, "b-daily", timedelta(days=2))

    await scheduler(queue).run_once()

    assert len(await ticks_of(db, "b-daily")) == 1
    never = [s for s in await queue.schedules() if s.name == "a-never"]
    assert [s.next_tick for s in never] == [None]


# --- schedules declared in code ----------------------------------------------------------------


def declaring(name: str, cron: str = "0 3 * * *") -> Registry:
    """A private registry (never the global one) that declares one schedule of Echo."""
    private = Registry()
    private.register(Echo)
    private.add_schedule(build_schedule(name, cron, Echo(text="from code")))
    return private


async def test_a_worker_writes_the_schedules_declared_in_its_code(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue, job_registry=declaring("code-report")):
        row = await eventually(lambda: schedule_row(db, "code-report"), until=bool)

    assert row is not None
    assert (row["cron"], row["in_code"], row["job_type"], row["paused"]) == (
        "0 3 * * *",
        True,
        ECHO,
        False,
    )
    [listed] = await queue.schedules()
    assert (listed.name, listed.in_code) == ("code-report", True)


async def test_add_schedule_refuses_the_name_of_a_code_declared_schedule(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with running(queue, job_registry=declaring("code-report")):
        await eventually(lambda: schedule_row(db, "code-report"), until=bool)
    before = await schedule_row(db, "code-report")

    with pytest.raises(InvalidJob, match="'code-report' is declared in code with @schedule"):
        await queue.add_schedule("code-report", "* * * * *", Echo(text="from the api"))

    assert await schedule_row(db, "code-report") == before


async def test_a_worker_refuses_to_declare_a_schedule_added_with_add_schedule(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.add_schedule("report", "* * * * *", Echo(text="from the api"))
    before = await schedule_row(db, "report")
    worker = Worker(queue, job_registry=declaring("report"))

    with pytest.raises(ConfigurationError, match="'report' is declared with @schedule, but"):
        await asyncio.wait_for(worker.run(), timeout=10)

    assert await schedule_row(db, "report") == before
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers") == 0


async def test_a_scheduler_keeps_only_the_code_declared_schedules_its_code_declares(
    queue: Queue, db: asyncpg.Connection
) -> None:
    at = quiet_time_of_day(await db_now(db), "UTC")
    mine = build_schedule("mine", daily_cron(at), Echo(text="mine"))
    theirs = build_schedule("theirs", daily_cron(at), Echo(text="theirs"))
    for declared in (mine, theirs):
        assert await queue.store.save_schedule(schedule=declared, in_code=True)
        await backdate(db, declared.name, timedelta(days=2))

    await scheduler(queue, mine).run_once()

    assert len(await ticks_of(db, "mine")) == 1
    assert await ticks_of(db, "theirs") == []


# --- enqueue_schedule_ticks --------------------------------------------------------------------


async def per_second_schedule(queue: Queue, db: asyncpg.Connection, name: str) -> datetime:
    """A per-second schedule created an hour ago; returns its created_at, a whole second."""
    await queue.add_schedule(name, "* * * * * *", Echo(text="tick"))
    created: datetime = await db.fetchval(
        "UPDATE pgqueue.schedules SET created_at = date_trunc('second', now()) - interval '1 hour'"
        " WHERE name = $1 RETURNING created_at",
        name,
    )
    return created


async def call_enqueue(
    connection: asyncpg.Connection | asyncpg.Pool,
    name: str,
    seen: datetime,
    ticks: list[datetime],
    done_until: datetime,
) -> list[int]:
    rows = await connection.fetch(
        "SELECT id FROM pgqueue.enqueue_schedule_ticks($1, $2, $3, $4) AS id",
        name,
        seen,
        ticks,
        done_until,
    )
    return [row["id"] for row in rows]


async def test_concurrent_callers_enqueue_each_tick_exactly_once(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    created = await per_second_schedule(queue, db, "busy")
    seen = await db.fetchval("SELECT updated_at FROM pgqueue.schedules WHERE name = 'busy'")
    connections = [await asyncpg.connect(dsn) for _ in range(10)]
    try:
        returned: list[int] = []
        for start in (0, 30, 60):  # three passes, each raced by ten callers
            ticks = [created + timedelta(seconds=s) for s in range(start + 1, start + 31)]
            per_caller = await asyncio.gather(
                *(call_enqueue(c, "busy", seen, ticks, ticks[-1]) for c in connections)
            )
            returned += [job_id for ids in per_caller for job_id in ids]
            assert sum(len(ids) for ids in per_caller) == 30
    finally:
        for connection in connections:
            await connection.close()

    assert len(set(returned)) == 90
    duplicates = await db.fetch(
        "SELECT schedule_tick FROM pgqueue.jobs WHERE schedule_name = 'busy'"
        " GROUP BY schedule_tick HAVING count(*) > 1"
    )
    assert duplicates == []
    assert await ticks_of(db, "busy") == [created + timedelta(seconds=s) for s in range(1, 91)]
    assert sorted(returned) == [
        row["id"] for row in await db.fetch("SELECT id FROM pgqueue.jobs ORDER BY id")
    ]
    assert await db.fetchval(
        "SELECT last_tick FROM pgqueue.schedules WHERE name = 'busy'"
    ) == created + timedelta(seconds=90)


async def test_the_unique_index_turns_a_repeated_tick_into_nothing(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    created = await per_second_schedule(queue, db, "busy")
    seen = await db.fetchval("SELECT updated_at FROM pgqueue.schedules WHERE name = 'busy'")
    ticks = [created + timedelta(seconds=s) for s in range(1, 21)]
    assert len(await call_enqueue(db, "busy", seen, ticks, ticks[-1])) == 20
    # Forget the last tick, so that only jobs_schedule_tick_idx stands between these and a repeat.
    await db.execute("UPDATE pgqueue.schedules SET last_tick = NULL WHERE name = 'busy'")

    connections = [await asyncpg.connect(dsn) for _ in range(10)]
    try:
        per_caller = await asyncio.gather(
            *(call_enqueue(c, "busy", seen, ticks, ticks[-1]) for c in connections)
        )
    finally:
        for connection in connections:
            await connection.close()

    assert per_caller == [[]] * 10
    assert await ticks_of(db, "busy") == ticks


async def test_enqueue_skips_ticks_at_or_before_last_tick(
    queue: Queue, db: asyncpg.Connection
) -> None:
    created = await per_second_schedule(queue, db, "busy")
    seen = await db.fetchval("SELECT updated_at FROM pgqueue.schedules WHERE name = 'busy'")
    await db.execute(
        "UPDATE pgqueue.schedules SET last_tick = $1 WHERE name = 'busy'",
        created + timedelta(seconds=5),
    )
    ticks = [created + timedelta(seconds=s) for s in range(11)]

    ids = await call_enqueue(db, "busy", seen, ticks, ticks[-1])

    assert len(ids) == 5
    assert await ticks_of(db, "busy") == ticks[6:]
    row = await db.fetchrow(
        "SELECT run_at, schedule_tick, job_type, queue, status::text AS status"
        " FROM pgqueue.jobs WHERE id = $1",
        ids[0],
    )
    assert dict(row) == {
        "run_at": ticks[6],  # a job runs at its tick
        "schedule_tick": ticks[6],
        "job_type": ECHO,
        "queue": Echo.job_options.queue,
        "status": "pending",
    }


@pytest.mark.parametrize("change", ["updated since read", "paused", "deleted"])
async def test_enqueue_does_nothing_for_a_schedule_changed_paused_or_deleted_since_read(
    queue: Queue, db: asyncpg.Connection, change: str
) -> None:
    created = await per_second_schedule(queue, db, "busy")
    seen = await db.fetchval("SELECT updated_at FROM pgqueue.schedules WHERE name = 'busy'")
    if change == "updated since read":
        await queue.add_schedule("busy", "*/2 * * * * *", Echo(text="tick"))
    elif change == "paused":
        await queue.pause_schedule("busy")
    else:
        await queue.delete_schedule("busy")
    before = await schedule_row(db, "busy")
    ticks = [created + timedelta(seconds=s) for s in range(1, 6)]

    assert await call_enqueue(db, "busy", seen, ticks, ticks[-1]) == []

    assert await ticks_of(db, "busy") == []
    assert await schedule_row(db, "busy") == before  # last_tick did not move


# --- a Scheduler pass over ticks that came due in the past -------------------------------------


@pytest.mark.parametrize(
    ("policy", "kept"),
    [("latest", slice(-1, None)), ("none", slice(0, 0)), ("all", slice(None))],
)
async def test_a_scheduler_pass_applies_the_missed_policy_to_ticks_missed_before_it_ran(
    queue: Queue, db: asyncpg.Connection, policy: MissedTicks, kept: slice
) -> None:
    now = await db_now(db)
    at = quiet_time_of_day(now, "UTC")
    await queue.add_schedule(
        "daily", daily_cron(at), Echo(text="daily"), missed=policy, queue="reports", priority=3
    )
    await backdate(db, "daily", timedelta(days=10))
    missed = daily_ticks(at, "UTC", until=now, days=10)

    await scheduler(queue).run_once()

    assert await ticks_of(db, "daily") == missed[kept]
    jobs = await db.fetch(
        "SELECT job_type, payload::text AS payload, queue, priority, run_at, schedule_tick,"
        " status::text AS status FROM pgqueue.jobs"
    )
    for job in jobs:
        assert (job["job_type"], job["queue"], job["priority"], job["status"]) == (
            ECHO,
            "reports",
            3,
            "pending",
        )
        assert Echo.model_validate_json(job["payload"]) == Echo(text="daily")
        assert job["run_at"] == job["schedule_tick"]
    row = await schedule_row(db, "daily")
    assert row is not None
    assert row["last_tick"] == missed[-1]  # the skipped ticks are done with too


@pytest.mark.parametrize("policy", ["latest", "none", "all"])
async def test_a_second_pass_enqueues_nothing_more(
    queue: Queue, db: asyncpg.Connection, policy: MissedTicks
) -> None:
    at = quiet_time_of_day(await db_now(db), "UTC")
    await queue.add_schedule("daily", daily_cron(at), Echo(text="x"), missed=policy)
    await backdate(db, "daily", timedelta(days=10))
    passes = scheduler(queue)
    await passes.run_once()
    first = await ticks_of(db, "daily")

    sleep = await passes.run_once()

    assert await ticks_of(db, "daily") == first
    assert 0 < sleep <= POLL.total_seconds()


async def test_concurrent_schedulers_enqueue_each_missed_tick_once(
    queue: Queue, db: asyncpg.Connection
) -> None:
    now = await db_now(db)
    at = quiet_time_of_day(now, "UTC")
    await queue.add_schedule("daily", daily_cron(at), Echo(text="x"), missed="all")
    await backdate(db, "daily", timedelta(days=30))

    await asyncio.gather(*(scheduler(queue).run_once() for _ in range(10)))

    assert await ticks_of(db, "daily") == daily_ticks(at, "UTC", until=now, days=30)


async def test_with_missed_none_only_the_ticks_of_the_last_seconds_are_enqueued(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await per_second_schedule(queue, db, "every-second")
    await db.execute("UPDATE pgqueue.schedules SET missed = 'none'")
    passes = scheduler(queue)

    await passes.run_once()  # an hour of ticks: only those of the last MISSED_AFTER are late

    now = await db_now(db)
    ticks = await ticks_of(db, "every-second")
    assert ticks, "the late ticks are enqueued"
    assert min(ticks) >= now - MISSED_AFTER - timedelta(seconds=1)
    assert ticks == [ticks[0] + timedelta(seconds=i) for i in range(len(ticks))]  # no gap

    async def one_pass() -> list[datetime]:
        await passes.run_once()
        return await ticks_of(db, "every-second")

    more = await eventually(one_pass, until=lambda found: len(found) > len(ticks), within=5)

    assert more[len(ticks)] == ticks[-1] + timedelta(seconds=1)  # the very next tick, no gap


async def test_a_paused_schedule_enqueues_nothing(queue: Queue, db: asyncpg.Connection) -> None:
    at = quiet_time_of_day(await db_now(db), "UTC")
    await queue.add_schedule("daily", daily_cron(at), Echo(text="x"), missed="all")
    await backdate(db, "daily", timedelta(days=5))
    await queue.pause_schedule("daily")

    await scheduler(queue).run_once()

    assert await ticks_of(db, "daily") == []
    row = await schedule_row(db, "daily")
    assert row is not None
    assert row["last_tick"] is None


async def test_resume_skips_the_ticks_that_came_due_while_paused(
    queue: Queue, db: asyncpg.Connection
) -> None:
    now = await db_now(db)
    at = quiet_time_of_day(now, "UTC")
    await queue.add_schedule("daily", daily_cron(at), Echo(text="x"), missed="all")
    await backdate(db, "daily", timedelta(days=5))
    await queue.pause_schedule("daily")
    passes = scheduler(queue)
    await passes.run_once()  # the worker was running all along: the ticks are not "missed"

    await queue.resume_schedule("daily")
    await passes.run_once()

    assert await ticks_of(db, "daily") == []  # not even with missed='all'
    [listed] = await queue.schedules()
    assert listed.next_tick == daily_ticks(at, "UTC", until=now, days=1)[0] + timedelta(days=1)


@pytest.mark.parametrize(
    "zone", ["Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
)
async def test_ticks_fall_at_the_wall_clock_time_of_the_schedules_zone(
    queue: Queue, db: asyncpg.Connection, zone: str
) -> None:
    now = await db_now(db)
    at = quiet_time_of_day(now, zone)
    await queue.add_schedule("daily", daily_cron(at), Echo(text="x"), timezone=zone, missed="all")
    await backdate(db, "daily", timedelta(days=14))

    await scheduler(queue).run_once()

    ticks = await ticks_of(db, "daily")
    assert ticks == daily_ticks(at, zone, until=now, days=14)
    assert {tick.astimezone(ZoneInfo(zone)).time() for tick in ticks} == {at}
    [listed] = await queue.schedules()
    assert listed.next_tick is not None
    assert listed.next_tick.astimezone(ZoneInfo(zone)).time() == at


async def test_ticks_follow_dst_in_europe_paris_as_stored_in_the_database(
    queue: Queue, db: asyncpg.Connection
) -> None:
    """02:30 daily across 2026's two changes: 03:00 on 29 March, twice on 25 October."""
    await queue.add_schedule(
        "paris", "30 2 * * *", Echo(text="x"), timezone="Europe/Paris", missed="all"
    )
    await db.execute(
        "UPDATE pgqueue.schedules SET created_at = '2026-03-27T12:00:00Z',"
        " last_tick = NULL WHERE name = 'paris'"
    )
    await scheduler(queue).run_once()  # some 240 ticks: far fewer than one pass may take

    ticks = await ticks_of(db, "paris")
    by_day: dict[date, list[datetime]] = {}
    for tick in ticks:
        by_day.setdefault(tick.astimezone(ZoneInfo("Europe/Paris")).date(), []).append(tick)
    assert by_day[date(2026, 3, 28)] == [datetime(2026, 3, 28, 1, 30, tzinfo=UTC)]
    assert by_day[date(2026, 3, 29)] == [datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]  # 03:00
    assert by_day[date(2026, 3, 30)] == [datetime(2026, 3, 30, 0, 30, tzinfo=UTC)]
    assert by_day[date(2026, 10, 24)] == [datetime(2026, 10, 24, 0, 30, tzinfo=UTC)]
    assert by_day[date(2026, 10, 25)] == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 CET
    ]
    assert by_day[date(2026, 10, 26)] == [datetime(2026, 10, 26, 1, 30, tzinfo=UTC)]
    in_2026 = [day for day in by_day if day < date(2027, 1, 1)]
    assert in_2026 == [date(2026, 3, 28) + timedelta(days=i) for i in range(len(in_2026))]
    assert [d for d in in_2026 if len(by_day[d]) != 1] == [date(2026, 10, 25)]
    assert len(ticks) == len(set(ticks))


# --- a worker that starts while another is running ---------------------------------------------


async def test_a_second_worker_starting_does_not_drop_a_tick_the_first_is_about_to_enqueue(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await per_second_schedule(queue, db, "every-second")
    await db.execute("UPDATE pgqueue.schedules SET missed = 'none'")
    running_worker = scheduler(queue)
    await running_worker.run_once()  # running from now on; the old ticks are skipped
    skipped_until = (await schedule_row(db, "every-second") or {})["last_tick"]
    next_tick = skipped_until + timedelta(seconds=1)
    await eventually(lambda: db_now(db), until=lambda now: now > next_tick, within=5)

    await scheduler(queue).run_once()  # a second worker starts before the first's next pass
    await running_worker.run_once()

    assert next_tick in await ticks_of(db, "every-second")
