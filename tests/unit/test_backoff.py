"""Backoff: exponential growth, the cap, jitter bounds and argument checks. Pure arithmetic."""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest

from pgqueue import Backoff, Retry


def test_delay_starts_at_base_and_grows_by_factor_per_attempt() -> None:
    backoff = Backoff(base=timedelta(seconds=2), factor=3, cap=timedelta(hours=1), jitter=0)

    delays = [backoff.delay(attempt) for attempt in range(1, 5)]

    assert delays == [timedelta(seconds=s) for s in (2, 6, 18, 54)]


def test_defaults_double_from_one_second() -> None:
    backoff = Backoff(jitter=0)

    assert [backoff.delay(attempt).total_seconds() for attempt in (1, 2, 3)] == [1, 2, 4]


def test_delay_never_exceeds_cap() -> None:
    backoff = Backoff(base=timedelta(seconds=10), factor=2, cap=timedelta(minutes=1), jitter=0)

    assert backoff.delay(3) == timedelta(seconds=40)
    assert backoff.delay(4) == timedelta(minutes=1)
    assert backoff.delay(50) == timedelta(minutes=1)


def test_huge_attempt_numbers_stay_at_cap() -> None:
    backoff = Backoff(jitter=0)

    assert backoff.delay(10**9) == backoff.cap


def test_attempt_zero_or_below_waits_the_base_delay() -> None:
    backoff = Backoff(base=timedelta(seconds=5), jitter=0)

    assert backoff.delay(0) == backoff.delay(-3) == timedelta(seconds=5)


def test_jitter_shortens_delay_by_at_most_its_fraction() -> None:
    backoff = Backoff(base=timedelta(seconds=100), factor=1, jitter=0.25)

    delays = {backoff.delay(1) for _ in range(2000)}

    assert all(timedelta(seconds=75) <= delay <= timedelta(seconds=100) for delay in delays)
    assert len(delays) > 1000  # the delays really are spread out, not one fixed value
    assert min(delays) < timedelta(seconds=80)
    assert max(delays) > timedelta(seconds=95)


def test_full_jitter_stays_between_zero_and_the_delay() -> None:
    backoff = Backoff(base=timedelta(seconds=8), factor=1, jitter=1)

    assert all(timedelta(0) <= backoff.delay(1) <= timedelta(seconds=8) for _ in range(1000))


def test_jitter_applies_to_the_capped_delay() -> None:
    backoff = Backoff(base=timedelta(seconds=1), cap=timedelta(seconds=10), jitter=0.5)

    assert all(
        timedelta(seconds=5) <= backoff.delay(30) <= timedelta(seconds=10) for _ in range(1000)
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"base": timedelta(seconds=-1)}, "must not be negative"),
        ({"cap": timedelta(seconds=-1)}, "must not be negative"),
        ({"factor": 0.5}, "factor 0.5 must be at least 1"),
        ({"jitter": -0.1}, "jitter -0.1 must be between 0 and 1"),
        ({"jitter": 1.5}, "jitter 1.5 must be between 0 and 1"),
        ({"jitter": math.nan}, "jitter nan must be between 0 and 1"),
        ({"factor": math.nan}, "factor nan must be at least 1 and finite"),
        ({"factor": math.inf}, "factor inf must be at least 1 and finite"),
        ({"cap": timedelta(days=36526)}, "backoff cap must be at most a century"),
        ({"base": timedelta.max}, "backoff base must be at most a century"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_value(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delay", "message"),
    [
        (math.inf, "Retry delay must be a finite number of seconds, got inf"),
        (math.nan, "Retry delay must be a finite number of seconds, got nan"),
        (-1, "Retry delay must not be negative, got -1"),
        (timedelta(days=40000), "Retry delay must be at most a century"),
    ],
)
def test_retry_refuses_a_delay_it_could_not_schedule(delay: float, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Retry(delay)


def test_retry_takes_seconds_or_a_timedelta() -> None:
    assert Retry(1.5).delay == Retry(timedelta(seconds=1.5)).delay == timedelta(seconds=1.5)
