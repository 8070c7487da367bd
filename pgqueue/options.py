"""What a Job class declares and what one enqueue overrides, with the checks of their values.

A leaf: it imports nothing of pgqueue above the value modules, so the store, the queue and the
worker all read the same definitions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pgqueue.errors import InvalidQueueName
from pgqueue.retry import Backoff

DEFAULT_QUEUE = "default"
#: The most retries a job may have: its max_attempts (max_retries + 1) is a smallint.
MAX_RETRIES = 32766
#: Priorities run from -MAX_PRIORITY to MAX_PRIORITY (a smallint).
MAX_PRIORITY = 32767
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,63}")


def check_queue_name(name: object) -> str:
    """Return ``name`` if it is a valid queue name, else raise InvalidQueueName."""
    if not isinstance(name, str) or not _QUEUE_NAME.fullmatch(name):
        raise InvalidQueueName(name)
    return name


def check_max_retries(max_retries: object) -> int:
    """``max_retries`` if it is an int from 0 to MAX_RETRIES, else ValueError naming it."""
    if (
        isinstance(max_retries, bool)
        or not isinstance(max_retries, int)
        or not 0 <= max_retries <= MAX_RETRIES
    ):
        raise ValueError(f"max_retries must be an int from 0 to {MAX_RETRIES}, got {max_retries!r}")
    return max_retries


def max_attempts(max_retries: int) -> int:
    """The attempts a job gets: its first one, then each retry (the column is max_attempts)."""
    return max_retries + 1


@dataclass(frozen=True)
class JobOptions:
    """What a Job class declares with its class keywords (None: the worker's default)."""

    name: str
    queue: str = DEFAULT_QUEUE
    max_retries: int | None = None
    timeout: timedelta | None = None
    backoff: Backoff | None = None
    retry_on: tuple[type[BaseException], ...] = ()
    give_up_on: tuple[type[BaseException], ...] = ()


@dataclass(frozen=True)
class EnqueueOptions:
    """Per-enqueue overrides of a job class's defaults; None keeps the default."""

    delay: timedelta | float | None = None
    run_at: datetime | None = None
    priority: int | None = None
    queue: str | None = None
    max_retries: int | None = None
    backoff: timedelta | float | None = None
    unique_key: str | None = None
    unique_for: timedelta | float | None = None
    depends_on: Sequence[int] | None = None
    run_anyway: bool = False
