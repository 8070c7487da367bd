"""The worker's settings, checked once: what ``Worker(queue, ...)`` was given, as one frozen
value its parts read instead of a dozen arguments each."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import timedelta

from pgqueue.durations import as_timedelta
from pgqueue.limits import QueueLimit
from pgqueue.options import check_max_retries, check_queue_name, max_attempts
from pgqueue.retention import Retention
from pgqueue.retry import Backoff
from pgqueue.worker.executor import RetryPolicy


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    queues: list[str] | None  # None: every queue a registered job class or schedule names
    concurrency: int
    prefetch: int
    poll_interval: timedelta
    defaults: RetryPolicy
    shutdown_grace: timedelta
    heartbeat_interval: timedelta
    heartbeat_timeout: timedelta
    blocked_loop_timeout: timedelta
    retention: Retention | None  # None: this worker does not prune
    listen: bool  # False: poll only (PgBouncer in transaction mode)
    queue_limits: dict[str, QueueLimit]
    metrics_port: int | None  # None: no metrics
    metrics_host: str

    @property
    def default_max_attempts(self) -> int:
        """Attempts of a job whose row and class leave them to the worker."""
        return max_attempts(self.defaults.max_retries)

    @classmethod
    def checked(
        cls,
        *,
        queues: Sequence[str] | None,
        concurrency: int,
        prefetch: int | None,
        poll_interval: timedelta | float,
        timeout: timedelta | float | None,
        max_retries: int,
        backoff: Backoff | None,
        shutdown_grace: timedelta | float,
        heartbeat_interval: timedelta | float,
        heartbeat_timeout: timedelta | float,
        blocked_loop_timeout: timedelta | float,
        retention: Retention | None,
        listen: bool,
        queue_limits: Mapping[str, int | QueueLimit] | None,
        metrics_port: int | None,
        metrics_host: str,
    ) -> WorkerSettings:
        """Check each value (raising ValueError naming the bad one) and convert it."""
        _check_count("concurrency", concurrency, 1)
        check_max_retries(max_retries)
        checked_queues = None if queues is None else [check_queue_name(q) for q in queues]
        if prefetch is not None:
            _check_count("prefetch", prefetch, 0)
        poll = _positive(poll_interval, "poll_interval")
        defaults = RetryPolicy(
            max_retries=max_retries,
            backoff=backoff or Backoff(),
            timeout=as_timedelta(timeout, "timeout"),
        )
        grace = _positive(shutdown_grace, "shutdown_grace", allow_zero=True)
        beat = _positive(heartbeat_interval, "heartbeat_interval")
        lease = _positive(heartbeat_timeout, "heartbeat_timeout")
        check_heartbeat(beat, lease)
        blocked = _positive(blocked_loop_timeout, "blocked_loop_timeout")
        limits = {
            check_queue_name(name): limit if isinstance(limit, QueueLimit) else QueueLimit(limit)
            for name, limit in (queue_limits or {}).items()
        }
        if metrics_port is not None and not 0 <= metrics_port <= 65535:
            raise ValueError(f"metrics_port must be from 0 to 65535, got {metrics_port}")
        return cls(
            queues=checked_queues,
            concurrency=concurrency,
            prefetch=_default_prefetch(concurrency) if prefetch is None else prefetch,
            poll_interval=poll,
            defaults=defaults,
            shutdown_grace=grace,
            heartbeat_interval=beat,
            heartbeat_timeout=lease,
            blocked_loop_timeout=blocked,
            retention=retention,
            listen=listen,
            queue_limits=limits,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        )


def _default_prefetch(concurrency: int) -> int:
    """A quarter of the slots, at most 50: enough that a freed slot rarely waits on a claim,
    few enough that jobs do not sit claimed here while another worker could run them (or a
    more urgent job, enqueued later, waits behind them). None below 4 slots."""
    return min(50, concurrency // 4)


def check_heartbeat(interval: timedelta, timeout: timedelta) -> None:
    """A lease must outlast the pause between two beats."""
    if timeout <= interval:
        raise ValueError(
            f"heartbeat_timeout ({timeout.total_seconds():g}s) must be longer than "
            f"heartbeat_interval ({interval.total_seconds():g}s)"
        )


def _check_count(what: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{what} must be a whole number of at least {least}, got {value!r}")


def _positive(value: timedelta | float, what: str, *, allow_zero: bool = False) -> timedelta:
    delta = as_timedelta(value, what)
    assert delta is not None
    if delta == timedelta(0) and not allow_zero:
        raise ValueError(f"{what} must be positive")
    return delta
