"""Durations given as seconds or a timedelta, checked once for every keyword that takes one."""

from __future__ import annotations

import math
from datetime import timedelta
from numbers import Real

#: The longest duration pgqueue takes: a century. Beyond it a delay, a backoff or a retention
#: would put a timestamp out of PostgreSQL's or Python's range (and means a unit mistake).
MAX_DURATION = timedelta(days=36525)


def as_timedelta(
    value: timedelta | float | None, what: str, *, shown: object = None
) -> timedelta | None:
    """Accept seconds or a timedelta from 0 to a century; raise ValueError naming ``what`` and
    the value (as ``shown``, if given) for a negative, NaN, infinite or longer one (TypeError
    for what is not a duration)."""
    if value is None:
        return None
    given = value if shown is None else shown
    if isinstance(value, timedelta):
        return check_duration(value, what, shown=given)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{what} must be seconds or a timedelta, got {given!r}")
    try:
        seconds = float(value)
    except OverflowError:  # an int past float's range
        seconds = math.inf if value > 0 else -math.inf
    if math.isnan(seconds) or (math.isinf(seconds) and isinstance(value, float)):
        raise ValueError(f"{what} must be a finite number of seconds, got {given!r}")
    # Clamped just past the bounds first, as timedelta() itself overflows at 999999999 days;
    # the clamp changes no value that passes.
    clamped = max(-1.0, min(seconds, MAX_DURATION.total_seconds() + 1))
    return check_duration(timedelta(seconds=clamped), what, shown=given)


def check_duration(delta: timedelta, what: str, *, shown: object = None) -> timedelta:
    """``delta`` if it is from 0 to a century, else ValueError naming ``what`` (and the value
    as given, ``shown``)."""
    given = delta if shown is None else shown
    if delta < timedelta(0):
        raise ValueError(f"{what} must not be negative, got {given!r}")
    if delta > MAX_DURATION:
        raise ValueError(
            f"{what} must be at most a century ({MAX_DURATION.days} days), got {given!r}"
        )
    return delta
