"""QueueLimit: how much of a queue may run at once and how fast, across every worker."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from pgqueue.durations import as_timedelta

_RATE = re.compile(r"(\d+)/(\d*\.?\d*)(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_INT_MAX = 2**31 - 1  # the columns are integer
_MAX_PERIOD = timedelta(days=3653)


@dataclass(frozen=True)
class QueueLimit:
    """At most ``concurrency`` jobs of the queue running at once, at most ``rate`` started per
    ``per`` (seconds or a timedelta); None means no such limit."""

    concurrency: int | None = None
    rate: int | None = None
    per: timedelta | float = timedelta(seconds=1)

    def __post_init__(self) -> None:
        for what, value in (("concurrency", self.concurrency), ("rate", self.rate)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _INT_MAX:
                raise ValueError(
                    f"a queue's {what} limit must be an int from 1 to {_INT_MAX}, got {value!r}"
                )
        try:
            period = as_timedelta(self.per, "per")
        except (OverflowError, ValueError, TypeError):
            period = None
        if period is None or not timedelta(milliseconds=1) <= period <= _MAX_PERIOD:
            raise ValueError(f"a queue's rate period must be 1 ms to 10 years, got {self.per!r}")
        object.__setattr__(self, "per", period)  # seconds or timedelta: equal limits compare equal

    @property
    def period(self) -> timedelta:
        assert isinstance(self.per, timedelta)
        return self.per

    @classmethod
    def parse_rate(cls, text: str) -> QueueLimit:
        """``"100/1m"`` -> 100 jobs per minute (units ms, s, m, h, d; seconds without one)."""
        match = _RATE.fullmatch(text.strip())
        if match is None or match.group(2) in ("", "."):
            raise ValueError(f"rate {text!r} must look like 100/1s, 600/1m or 10/2.5 (seconds)")
        seconds = float(match.group(2)) * _UNITS[match.group(3) or "s"]
        return cls(rate=int(match.group(1)), per=seconds)
