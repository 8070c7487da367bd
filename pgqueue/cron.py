"""Cron arithmetic, pure: which ticks of a schedule are due, and when the next one comes.

Expressions are parsed by croniter: five fields (minute hour day month weekday), six with a
leading seconds field, or an alias (``@hourly``, ``@daily``, ``@weekly``, ``@monthly``,
``@yearly``). Ticks are computed in the schedule's time zone, so across a DST change they
follow croniter: a wall-clock time skipped in spring fires at the first valid time after the
gap, and one that occurs twice in autumn fires twice (two distinct instants).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from pgqueue.records import MissedTicks

_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
MISSED_POLICIES: tuple[MissedTicks, ...] = ("latest", "none", "all")
#: The most ticks one pass enqueues for one schedule; the rest come on the next passes.
MAX_TICKS_PER_PASS = 1000
#: A tick found due this much later than it came due was missed: no worker was running (or none
#: could reach the database) to enqueue it in time. Anything less is only late.
MISSED_AFTER = timedelta(seconds=10)
_EPSILON = timedelta(microseconds=1)


def check_cron(expression: object) -> str:
    """Return ``expression`` if croniter accepts it in our format, else raise ValueError."""
    if not isinstance(expression, str):
        raise ValueError(f"a cron expression must be a string, got {expression!r}")
    text = " ".join(expression.split())
    fields = text.split(" ")
    is_alias = len(fields) == 1 and text.lower() in _ALIASES
    if not is_alias and len(fields) not in (5, 6):
        raise ValueError(
            f"cron expression {expression!r} has {len(fields)} fields: give five "
            "(minute hour day month weekday), six with a leading seconds field, or an alias "
            "such as @hourly, @daily or @weekly"
        )
    try:
        iterator = croniter(text, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=True)
        iterator.get_next(datetime)  # one that never fires (30 February) raises here
    except (CroniterError, ValueError, KeyError) as error:
        raise ValueError(f"cron expression {expression!r} is not valid: {error}") from error
    return text


def check_timezone(name: object) -> ZoneInfo:
    """The IANA time zone ``name``, or ValueError."""
    if not isinstance(name, str):
        raise ValueError(f"a time zone must be an IANA name such as 'Europe/Paris', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris'"
        ) from error


def check_missed(policy: object) -> MissedTicks:
    for known in MISSED_POLICIES:
        if policy == known:
            return known
    raise ValueError(f"missed must be one of {', '.join(MISSED_POLICIES)}, got {policy!r}")


def next_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick strictly after ``after``."""
    return _ticks_after(cron, timezone, after).__next__()


def due_ticks(
    cron: str,
    timezone: str,
    *,
    after: datetime,
    now: datetime,
    missed: MissedTicks,
    since: datetime | None = None,
) -> tuple[list[datetime], datetime | None]:
    """The ticks to enqueue now, and the tick the schedule is then done until (None: no tick
    came due after ``after``). Ticks are in UTC.

    Ticks in (``after``, ``now``] are due. Those at or before ``since`` (by default
    ``now - MISSED_AFTER``) came due while no worker was there to enqueue them: they are
    *missed*, and ``missed`` decides which of them are enqueued (the latest one, none, or all).
    Later ones are only late, and are all enqueued; with "latest", a late tick is the latest, so
    then no missed one is enqueued.
    """
    since = now - MISSED_AFTER if since is None else since
    latest_due = _tick_at_or_before(cron, timezone, now)
    if latest_due is None or latest_due <= after:
        return [], None
    ticks: list[datetime] = []
    if after < since:
        if missed == "all":
            ticks = _between(cron, timezone, after, min(since, now), MAX_TICKS_PER_PASS)
        elif missed == "latest" and latest_due <= since:  # no late tick supersedes them
            ticks = [latest_due]
    room = MAX_TICKS_PER_PASS - len(ticks)
    if room == 0:  # more missed ticks than one pass takes: the rest next time
        return ticks, ticks[-1]
    late = _between(cron, timezone, max(after, since), now, room)
    ticks += late
    capped = len(late) == room and late[-1] < latest_due
    return ticks, ticks[-1] if capped else latest_due


def _ticks_after(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """Ticks computed in ``timezone``, given in UTC: two datetimes of one ZoneInfo compare by
    wall clock, which cannot tell the two passes through an autumn hour apart."""
    start = after.astimezone(ZoneInfo(timezone))
    iterator = croniter(cron, start, second_at_beginning=True)
    while True:
        tick: datetime = iterator.get_next(datetime)
        yield tick.astimezone(UTC)


def _between(
    cron: str, timezone: str, after: datetime, until: datetime, limit: int
) -> list[datetime]:
    """Up to ``limit`` ticks in (``after``, ``until``]."""
    ticks = itertools.takewhile(lambda tick: tick <= until, _ticks_after(cron, timezone, after))
    return list(itertools.islice(ticks, limit))


def _tick_at_or_before(cron: str, timezone: str, moment: datetime) -> datetime | None:
    start = (moment + _EPSILON).astimezone(ZoneInfo(timezone))
    try:
        tick: datetime = croniter(cron, start, second_at_beginning=True).get_prev(datetime)
    except CroniterError:  # no earlier tick at all (e.g. a date before any match)
        return None
    return tick.astimezone(UTC)
