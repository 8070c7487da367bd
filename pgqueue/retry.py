"""Retry policy arithmetic: how long to wait before the next attempt. Pure, no I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


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
        if self.base < timedelta(0) or self.cap < timedelta(0):
            raise ValueError(f"backoff base {self.base} and cap {self.cap} must not be negative")
        if self.factor < 1:
            raise ValueError(f"backoff factor {self.factor} must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter {self.jitter} must be between 0 and 1")

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1 for the first attempt)."""
        exponent = min(max(attempt - 1, 0), 64)  # beyond 2**64 the cap has long applied
        seconds = min(self.base.total_seconds() * self.factor**exponent, self.cap.total_seconds())
        return timedelta(seconds=seconds * (1 - self.jitter * random.random()))
