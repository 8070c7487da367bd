"""Cron arithmetic (pgqueue.cron) and schedule validation: which ticks are due, which of them
count as missed and what each policy keeps of those, the per-pass cap, DST in Europe/Paris.
Pure functions: no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pgqueue import InvalidJob, schedule
from pgqueue.cron import (
    MAX_TICKS_PER_PASS,
    MISSED_POLICIES,
    check_cron,
    check_missed,
    check_timezone,
    due_ticks,
    next_tick,
)
from pgqueue.records import MissedTicks
from pgqueue.registry import registry
from pgqueue.schedule import build_schedule
from tests.jobs import Echo

PARIS = "Europe/Paris"
T = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday noon, far from any DST change


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def in_utc(ticks: list[datetime]) -> list[datetime]:
    """Ticks as UTC datetimes (due_ticks returns them so; this also normalises expectations)."""
    return [tick.astimezone(UTC) for tick in ticks]


def minutes(*offsets: int) -> list[datetime]:
    return [T + timedelta(minutes=m) for m in offsets]


def seconds_after(start: datetime, first: int, last: int) -> list[datetime]:
    return [start + timedelta(seconds=s) for s in range(first, last + 1)]


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("* * * *", "has 4 fields"),
        ("0 * * * * * *", "has 7 fields"),
        ("", "has 1 fields"),
        ("@fortnightly", "has 1 fields"),
        ("61 * * * *", "out of range"),
        ("0 25 * * *", "out of range"),
        ("* * * * * 99", "out of range"),
        ("*/0 * * * *", "step '0'"),
        ("a b c d e", "is not valid"),
    ],
)
def test_check_cron_rejects_a_bad_expression_naming_it_and_the_problem(
    expression: str, problem: str
) -> None:
    with pytest.raises(ValueError, match="cron expression") as raised:
        check_cron(expression)

    assert repr(expression) in str(raised.value)
    assert problem in str(raised.value)


def test_check_cron_says_how_many_fields_it_takes() -> None:
    with pytest.raises(ValueError, match="five") as raised:
        check_cron("* * *")

    assert "six with a leading seconds field" in str(raised.value)
    assert "@hourly" in str(raised.value)


@pytest.mark.parametrize("expression", [5, None, ["*"] * 5])
def test_check_cron_rejects_what_is_not_a_string(expression: object) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        check_cron(expression)


@pytest.mark.parametrize(
    ("expression", "normalised"),
    [
        ("*/5 * * * *", "*/5 * * * *"),
        ("  0   9\t* *  1-5 ", "0 9 * * 1-5"),
        ("0 30 9 * * *", "0 30 9 * * *"),
        ("@hourly", "@hourly"),
        ("@daily", "@daily"),
        ("@weekly", "@weekly"),
        ("@monthly", "@monthly"),
        ("@yearly", "@yearly"),
    ],
)
def test_check_cron_accepts_five_or_six_fields_or_an_alias(
    expression: str, normalised: str
) -> None:
    assert check_cron(expression) == normalised


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "Europe/Paris ", "../../etc/passwd"])
def test_check_timezone_rejects_an_unknown_zone_naming_it(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone") as raised:
        check_timezone(name)

    assert repr(name) in str(raised.value)


@pytest.mark.parametrize("name", [3, None])
def test_check_timezone_rejects_what_is_not_a_string(name: object) -> None:
    with pytest.raises(ValueError, match="must be an IANA name"):
        check_timezone(name)


def test_check_timezone_returns_the_zone() -> None:
    assert check_timezone(PARIS) == ZoneInfo(PARIS)


@pytest.mark.parametrize("policy", ["first", "LATEST", "", None, True])
def test_check_missed_rejects_unknown_policies_listing_the_known_ones(policy: object) -> None:
    with pytest.raises(ValueError, match="missed must be one of latest, none, all") as raised:
        check_missed(policy)

    assert repr(policy) in str(raised.value)


@pytest.mark.parametrize("policy", ["latest", "none", "all"])
def test_check_missed_accepts_the_three_policies(policy: MissedTicks) -> None:
    assert check_missed(policy) == policy


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"name": "has space"}, "schedule name 'has space' must be 1 to 200 letters"),
        ({"name": ""}, "schedule name '' must be"),
        ({"name": "x" * 201}, "must be 1 to 200"),
        ({"cron": "* * *"}, "schedule 'nightly': cron expression '* * *' has 3 fields"),
        ({"timezone": "Nowhere/City"}, "schedule 'nightly': unknown time zone 'Nowhere/City'"),
        ({"missed": "some"}, "schedule 'nightly': missed must be one of"),
        ({"queue": "no spaces"}, "no spaces"),
    ],
)
def test_build_schedule_raises_invalid_job_naming_what_is_wrong(
    arguments: dict[str, object], problem: str
) -> None:
    given: dict[str, object] = {"name": "nightly", "cron": "0 3 * * *", **arguments}
    name, cron = given.pop("name"), given.pop("cron")

    with pytest.raises(InvalidJob) as raised:
        build_schedule(name, cron, Echo(text="x"), **given)

    assert problem in str(raised.value)


def test_build_schedule_keeps_the_job_as_its_row() -> None:
    built = build_schedule(
        "nightly",
        " 0  3 * * * ",
        Echo(text="hi", numbers=[1]),
        timezone=PARIS,
        missed="all",
        queue="reports",
        priority=4,
        max_retries=2,
    )

    assert (built.name, built.cron, built.timezone, built.missed) == (
        "nightly",
        "0 3 * * *",
        PARIS,
        "all",
    )
    assert (built.job_type, built.queue, built.priority, built.max_attempts) == (
        Echo.job_options.name,
        "reports",
        4,
        3,
    )
    assert Echo.model_validate_json(built.payload) == Echo(text="hi", numbers=[1])


def test_schedule_decorator_rejects_bad_declarations_and_registers_nothing() -> None:
    """Every failure below is raised before anything reaches the global registry, which is
    why these declarations are safe in a module the whole test session imports."""
    before = registry.schedules()

    class NotAJob:
        pass

    with pytest.raises(InvalidJob, match="goes on a Job class with handle"):
        schedule("* * * * *")(NotAJob)  # type: ignore[type-var]
    with pytest.raises(InvalidJob, match="args do not validate as Echo"):
        schedule("* * * * *", args={"numbers": "not a list"})(Echo)
    with pytest.raises(InvalidJob, match="cron expression '61 \\* \\* \\* \\*'"):
        schedule("61 * * * *", args={"text": "x"})(Echo)
    with pytest.raises(InvalidJob, match="unknown time zone 'Paris'"):
        schedule("* * * * *", timezone="Paris", args={"text": "x"})(Echo)
    with pytest.raises(InvalidJob, match="schedule name 'a b'"):
        schedule("* * * * *", name="a b", args={"text": "x"})(Echo)

    assert registry.schedules() == before


# --- next_tick -------------------------------------------------------------------------------


def test_next_tick_is_strictly_after() -> None:
    assert next_tick("*/15 * * * *", "UTC", T) == T + timedelta(minutes=15)
    assert next_tick("*/15 * * * *", "UTC", T - timedelta(microseconds=1)) == T
    assert next_tick("*/15 * * * *", "UTC", T + timedelta(seconds=0.5)) == T + timedelta(minutes=15)


def test_six_fields_take_seconds_first() -> None:
    # Leading seconds: second 15 of every minute (trailing seconds would be minute 15).
    assert next_tick("15 * * * * *", "UTC", T) == T + timedelta(seconds=15)
    assert next_tick("0 30 9 * * *", "UTC", T) == utc(2026, 1, 6, 9, 30)
    assert next_tick("* * * * * *", "UTC", T) == T + timedelta(seconds=1)
    assert next_tick("*/10 * * * * *", "UTC", T + timedelta(seconds=3)) == T + timedelta(seconds=10)


def test_hourly_alias_ticks_on_the_hour() -> None:
    assert next_tick("@hourly", "UTC", utc(2026, 1, 5, 12, 34, 56)) == utc(2026, 1, 5, 13)
    assert next_tick("@hourly", "UTC", utc(2026, 1, 5, 13)) == utc(2026, 1, 5, 14)
    ticks, done_until = due_ticks(
        "@hourly", "UTC", after=T, now=T + timedelta(hours=3, minutes=5), since=T, missed="all"
    )
    assert ticks == [T + timedelta(hours=h) for h in (1, 2, 3)]
    assert done_until == T + timedelta(hours=3)


def test_daily_and_weekly_aliases() -> None:
    assert next_tick("@daily", "UTC", T) == utc(2026, 1, 6)
    assert next_tick("@weekly", "UTC", T) == utc(2026, 1, 11)  # Sunday midnight


def test_next_tick_is_in_the_schedules_time_zone() -> None:
    # 09:00 in Paris is 08:00 UTC in winter (UTC+1) and 07:00 UTC in summer (UTC+2).
    assert next_tick("0 9 * * *", PARIS, utc(2026, 1, 15, 12)) == utc(2026, 1, 16, 8)
    assert next_tick("0 9 * * *", PARIS, utc(2026, 7, 15, 12)) == utc(2026, 7, 16, 7)
    assert next_tick("0 9 * * *", "Asia/Kolkata", utc(2026, 1, 15, 12)) == utc(2026, 1, 16, 3, 30)


# --- due_ticks -------------------------------------------------------------------------------


def test_nothing_due_gives_no_ticks_and_no_done_until() -> None:
    every_minute = "* * * * *"

    assert due_ticks(
        every_minute, "UTC", after=T, now=T + timedelta(seconds=59), since=T, missed="all"
    ) == ([], None)
    assert due_ticks(every_minute, "UTC", after=T, now=T, since=T, missed="all") == ([], None)


def test_ticks_in_after_to_now_are_due_with_after_excluded_and_now_included() -> None:
    ticks, done_until = due_ticks(
        "* * * * *", "UTC", after=T, now=T + timedelta(minutes=3), since=T, missed="none"
    )

    assert ticks == minutes(1, 2, 3)
    assert done_until == T + timedelta(minutes=3)


def test_a_worker_that_was_running_all_along_enqueues_every_late_tick_whatever_the_policy() -> None:
    for policy in MISSED_POLICIES:
        ticks, done_until = due_ticks(
            "* * * * *",
            "UTC",
            after=T,
            now=T + timedelta(minutes=4, seconds=30),
            since=T - timedelta(hours=1),
            missed=policy,
        )
        assert ticks == minutes(1, 2, 3, 4), policy
        assert done_until == T + timedelta(minutes=4), policy


# Every minute; the worker began its run at T+5m30s, now is T+8m30s: the ticks T+1m..T+5m came
# due with no worker there (missed), T+6m..T+8m while this one ran (late).
SPLIT = {
    "after": T,
    "since": T + timedelta(minutes=5, seconds=30),
    "now": T + timedelta(minutes=8, seconds=30),
}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("latest", minutes(6, 7, 8)),  # a late tick is the latest: no missed one is needed
        ("none", minutes(6, 7, 8)),
        ("all", minutes(1, 2, 3, 4, 5, 6, 7, 8)),
    ],
)
def test_missed_policy_decides_the_missed_ticks_and_late_ones_are_all_enqueued(
    policy: MissedTicks, expected: list[datetime]
) -> None:
    ticks, done_until = due_ticks("* * * * *", "UTC", missed=policy, **SPLIT)

    assert ticks == expected
    assert done_until == T + timedelta(minutes=8)


def test_latest_enqueues_the_latest_missed_tick_when_no_late_one_follows() -> None:
    ticks, done_until = due_ticks(
        "* * * * *",
        "UTC",
        after=T,
        since=T + timedelta(minutes=5),
        now=T + timedelta(minutes=5, seconds=30),
        missed="latest",
    )

    assert ticks == minutes(5)
    assert done_until == T + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("latest", minutes(4)), ("none", minutes(4)), ("all", minutes(1, 2, 3, 4))],
)
def test_a_tick_exactly_at_since_counts_as_missed(
    policy: MissedTicks, expected: list[datetime]
) -> None:
    ticks, _ = due_ticks(
        "* * * * *",
        "UTC",
        after=T,
        since=T + timedelta(minutes=3),
        now=T + timedelta(minutes=4),
        missed=policy,
    )

    assert ticks == expected


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("latest", minutes(10)), ("none", []), ("all", minutes(*range(1, 11)))],
)
def test_when_every_due_tick_was_missed_the_schedule_still_moves_past_them(
    policy: MissedTicks, expected: list[datetime]
) -> None:
    ticks, done_until = due_ticks(
        "* * * * *",
        "UTC",
        after=T,
        now=T + timedelta(minutes=10, seconds=20),
        since=T + timedelta(minutes=10, seconds=20),
        missed=policy,
    )

    assert ticks == expected
    assert done_until == T + timedelta(minutes=10)  # skipped ticks are done with too


def test_since_later_than_now_is_read_as_now() -> None:
    ticks, done_until = due_ticks(
        "* * * * *",
        "UTC",
        after=T,
        now=T + timedelta(minutes=2),
        since=T + timedelta(hours=1),
        missed="latest",
    )

    assert ticks == minutes(2)
    assert done_until == T + timedelta(minutes=2)


# --- the per-pass cap ------------------------------------------------------------------------

EVERY_SECOND = "* * * * * *"


def test_late_ticks_beyond_the_cap_wait_for_the_next_pass() -> None:
    now = T + timedelta(seconds=2500)

    ticks, done_until = due_ticks(EVERY_SECOND, "UTC", after=T, now=now, since=T, missed="all")

    assert len(ticks) == MAX_TICKS_PER_PASS
    assert ticks == seconds_after(T, 1, MAX_TICKS_PER_PASS)
    assert done_until == ticks[-1] == T + timedelta(seconds=MAX_TICKS_PER_PASS)


def test_missed_ticks_beyond_the_cap_wait_for_the_next_pass() -> None:
    now = T + timedelta(seconds=2500)

    ticks, done_until = due_ticks(EVERY_SECOND, "UTC", after=T, now=now, since=now, missed="all")

    assert ticks == seconds_after(T, 1, MAX_TICKS_PER_PASS)
    assert done_until == ticks[-1]


def test_the_cap_counts_missed_and_late_ticks_together() -> None:
    ticks, done_until = due_ticks(
        EVERY_SECOND,
        "UTC",
        after=T,
        since=T + timedelta(seconds=300),
        now=T + timedelta(seconds=2500),
        missed="all",
    )

    assert ticks == seconds_after(T, 1, MAX_TICKS_PER_PASS)  # 300 missed, then 700 late
    assert done_until == ticks[-1]

    ticks, done_until = due_ticks(
        EVERY_SECOND,
        "UTC",
        after=T,
        since=T + timedelta(seconds=300),
        now=T + timedelta(seconds=2500),
        missed="latest",
    )

    assert ticks == seconds_after(T, 301, 300 + MAX_TICKS_PER_PASS)  # late ones supersede
    assert done_until == ticks[-1]


def test_exactly_the_cap_due_is_not_capped() -> None:
    now = T + timedelta(seconds=MAX_TICKS_PER_PASS)

    ticks, done_until = due_ticks(EVERY_SECOND, "UTC", after=T, now=now, since=T, missed="all")

    assert len(ticks) == MAX_TICKS_PER_PASS
    assert done_until == now


@pytest.mark.parametrize("policy", ["latest", "none", "all"])
def test_passes_resuming_from_done_until_catch_up_without_gap_or_repeat(
    policy: MissedTicks,
) -> None:
    """What the scheduler does: each pass starts after the previous pass's done_until."""
    since = T + timedelta(seconds=1500)
    now = T + timedelta(seconds=3200)
    after: datetime = T
    enqueued: list[datetime] = []
    for _ in range(10):
        ticks, done_until = due_ticks(
            EVERY_SECOND,
            "UTC",
            after=after,
            now=now,
            since=since,
            missed=policy,
        )
        if done_until is None:
            break
        assert len(ticks) <= MAX_TICKS_PER_PASS
        enqueued += ticks
        after = done_until

    assert after == now
    first = {"all": 1, "latest": 1501, "none": 1501}[policy]
    assert enqueued == seconds_after(T, first, 3200)


# --- DST in Europe/Paris (2026-03-29 02:00 -> 03:00; 2026-10-25 03:00 -> 02:00) --------------


def test_a_daily_time_skipped_in_spring_fires_at_the_end_of_the_gap() -> None:
    ticks, done_until = due_ticks(
        "30 2 * * *",
        PARIS,
        after=utc(2026, 3, 27, 12),
        now=utc(2026, 3, 30, 12),
        since=utc(2026, 3, 27, 12),
        missed="all",
    )

    assert ticks == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET (UTC+1)
        utc(2026, 3, 29, 1, 0),  # no 02:30 that day: 03:00 CEST, the end of the gap
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST (UTC+2)
    ]
    assert [tick.astimezone(ZoneInfo(PARIS)).strftime("%H:%M") for tick in ticks] == [
        "02:30",
        "03:00",
        "02:30",
    ]
    assert done_until == utc(2026, 3, 30, 0, 30)
    assert next_tick("30 2 * * *", PARIS, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1, 0)


def test_a_daily_time_repeated_in_autumn_fires_twice() -> None:
    ticks, _ = due_ticks(
        "30 2 * * *",
        PARIS,
        after=utc(2026, 10, 24, 12),
        now=utc(2026, 10, 26, 12),
        since=utc(2026, 10, 24, 12),
        missed="all",
    )

    assert in_utc(ticks) == [
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST (UTC+2)
        utc(2026, 10, 25, 1, 30),  # 02:30 again, CET (UTC+1)
        utc(2026, 10, 26, 1, 30),
    ]
    assert [tick.astimezone(ZoneInfo(PARIS)).utcoffset() for tick in ticks] == [
        timedelta(hours=2),
        timedelta(hours=1),
        timedelta(hours=1),
    ]
    first = next_tick("30 2 * * *", PARIS, utc(2026, 10, 24, 12))
    assert first.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    assert next_tick("30 2 * * *", PARIS, first).astimezone(UTC) == utc(2026, 10, 25, 1, 30)


def test_both_autumn_ticks_missed_keeps_only_the_second_with_latest() -> None:
    ticks, done_until = due_ticks(
        "30 2 * * *",
        PARIS,
        after=utc(2026, 10, 24, 12),
        now=utc(2026, 10, 25, 1, 45),
        since=utc(2026, 10, 25, 1, 45),
        missed="latest",
    )

    assert in_utc(ticks) == [utc(2026, 10, 25, 1, 30)]
    assert done_until is not None
    assert done_until.astimezone(UTC) == utc(2026, 10, 25, 1, 30)


def test_between_the_two_autumn_ticks_only_the_first_is_due() -> None:
    ticks, done_until = due_ticks(
        "30 2 * * *",
        PARIS,
        after=utc(2026, 10, 24, 12),
        now=utc(2026, 10, 25, 1, 0),
        since=utc(2026, 10, 24, 12),
        missed="all",
    )

    assert in_utc(ticks) == [utc(2026, 10, 25, 0, 30)]
    assert done_until is not None
    assert done_until.astimezone(UTC) == utc(2026, 10, 25, 0, 30)


@pytest.mark.parametrize("day", [utc(2026, 3, 28, 18), utc(2026, 10, 24, 18)])
@pytest.mark.parametrize("expression", ["0 * * * *", "*/15 * * * *", "0 0 * * * *"])
def test_sub_daily_schedules_keep_even_spacing_in_utc_across_a_dst_change(
    day: datetime, expression: str
) -> None:
    ticks, _ = due_ticks(
        expression, PARIS, after=day, now=day + timedelta(hours=12), since=day, missed="all"
    )

    step = timedelta(minutes=15) if expression.startswith("*/15") else timedelta(hours=1)
    assert in_utc(ticks) == [day + step * i for i in range(1, int(timedelta(hours=12) / step) + 1)]


def test_a_capped_pass_inside_the_repeated_autumn_hour_loses_no_tick() -> None:
    after = utc(2026, 10, 25, 0, 0)  # 02:00 CEST, the repeated hour begins
    now = utc(2026, 10, 25, 1, 10)  # 02:10 CET, the second time round
    enqueued: list[datetime] = []
    while True:
        ticks, done_until = due_ticks(
            EVERY_SECOND, PARIS, after=after, now=now, since=after, missed="all"
        )
        if done_until is None:
            break
        enqueued += in_utc(ticks)
        after = done_until.astimezone(UTC)  # as the database gives last_tick back

    assert enqueued == seconds_after(utc(2026, 10, 25, 0, 0), 1, 70 * 60)
