"""Retry policy arithmetic: how long to wait before the next attempt. Pure, no I/O."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import timedelta

from pgqueue.durations import as_timedelta, check_duration


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base * factor ** (attempt - 1)``, capped, with random jitter.

    ``jitter`` is the fraction of the delay that is randomised (0.1: up to 10% shorter), so a
    batch that failed together does not come back all at once.
    """

    base: timedelta = timedelta(seconds=1)
    factor: float = 2.0
    cap: timedelta = timedelta(minutes=5)
    jitter: float = 0.1

    def __post_init__(self) -> None:
        check_duration(self.base, "backoff base")
        check_duration(self.cap, "backoff cap")  # now() + the delay must stay a timestamp
        if not self.factor >= 1 or math.isinf(self.factor):  # not: NaN compares false
            raise ValueError(f"backoff factor {self.factor} must be at least 1 and finite")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter {self.jitter} must be between 0 and 1")

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1 for the first attempt)."""
        exponent = min(max(attempt - 1, 0), 64)  # beyond 2**64 the cap has long applied
        seconds = min(self.base.total_seconds() * self.factor**exponent, self.cap.total_seconds())
        return timedelta(seconds=seconds * (1 - self.jitter * random.random()))


class PermanentError(Exception):
    """Raise from ``handle()`` to fail the job at once: no further attempts, straight to failed."""


class Retry(Exception):
    """Raise from ``handle()`` to run the job again after ``delay`` (a snooze).

    The attempt is not counted and nothing is recorded as an error.
    """

    def __init__(self, delay: timedelta | float = 0, reason: str = "") -> None:
        self.delay = as_timedelta(delay, "Retry delay") or timedelta(0)
        super().__init__(reason or f"retry in {self.delay}")


def is_permanent(
    error: BaseException,
    retry_on: tuple[type[BaseException], ...],
    give_up_on: tuple[type[BaseException], ...],
) -> bool:
    """Whether a failure must not be retried: PermanentError, a ``give_up_on`` type, or (when
    ``retry_on`` is given) any type it does not name."""
    if isinstance(error, (PermanentError, *give_up_on)):
        return True
    return bool(retry_on) and not isinstance(error, retry_on)
