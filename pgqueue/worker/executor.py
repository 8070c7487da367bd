"""Runs one claimed job: validate it, call handle() under its timeout, record the outcome.

The outcome follows from how handle() ended: a return completes the job; ``Retry`` snoozes it
(the attempt not counted); ``PermanentError`` or a ``give_up_on`` type fails it at once; any
other exception, ``SystemExit`` and a stray ``CancelledError`` included, is a failed attempt
that is retried while attempts remain. Only the worker's own cancellation (shutdown, or
``Queue.cancel``) propagates, recording nothing. When the application traces, each attempt is a
span continuing the trace of the request that enqueued the job (``pgqueue.tracing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import json
import logging
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

from pydantic import ValidationError
from pydantic_core import to_json

from pgqueue.job import Job, JobContext, result_json
from pgqueue.logs import job_logging
from pgqueue.options import JobOptions, max_attempts
from pgqueue.records import JobStatus
from pgqueue.registry import Registry
from pgqueue.retry import Backoff, Retry, is_permanent
from pgqueue.rows import ClaimedJob
from pgqueue.store import JobStore
from pgqueue.tracing import JobSpan, job_span
from pgqueue.worker.completer import Completer
from pgqueue.worker.job_transaction import CompletingTransaction

log = logging.getLogger("pgqueue.worker")

ErrorHook = Callable[[Job, BaseException], Awaitable[None] | None]

_TRACEBACK_LIMIT = 8000  # characters of traceback kept per attempt


# How an attempt ended, as the worker saw it ("lost": its claim had passed to another worker).
Outcome = Literal["completed", "failed", "retried", "snoozed", "lost"]


class JobObserver(Protocol):
    """Told of each attempt's start and end (the worker's metrics)."""

    def job_started(self, job: ClaimedJob) -> None: ...

    def job_ended(self, job: ClaimedJob, outcome: Outcome, seconds: float) -> None: ...


class _Unobserved:
    def job_started(self, job: ClaimedJob) -> None:
        pass

    def job_ended(self, job: ClaimedJob, outcome: Outcome, seconds: float) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """The worker's defaults, for what neither the job row nor its class decides."""

    max_retries: int
    backoff: Backoff
    timeout: timedelta | None


class JobExecutor:
    def __init__(
        self,
        *,
        registry: Registry,
        store: JobStore,
        completer: Completer,
        worker_id: UUID,
        defaults: RetryPolicy,
        error_hooks: list[ErrorHook],
        observer: JobObserver | None = None,
    ) -> None:
        self._observer = observer or _Unobserved()
        self._registry = registry
        self._store = store
        self._completer = completer
        self._worker_id = worker_id
        self._defaults = defaults
        self._error_hooks = error_hooks

    async def run(self, claimed: ClaimedJob) -> None:
        """Run one attempt. The worker's own cancellation propagates and records nothing."""
        with (
            job_logging(
                job_id=claimed.id,
                queue=claimed.queue,
                job_type=claimed.job_type,
                attempt=claimed.attempt,
                worker_id=self._worker_id,
            ),
            job_span(claimed, self._worker_id) as span,  # a no-op unless tracing is on
        ):
            self._observer.job_started(claimed)
            started = time.monotonic()
            outcome = await self._attempt(claimed, span)
            span.ended(outcome)
            self._observer.job_ended(claimed, outcome, time.monotonic() - started)

    async def _attempt(self, claimed: ClaimedJob, span: JobSpan) -> Outcome:
        cls = self._registry.get(claimed.job_type)
        assert cls is not None, "the claim only returns registered job types"
        try:
            job = cls.model_validate_json(claimed.payload)
        except ValidationError as error:  # retrying cannot make a bad payload valid
            return await self._fail(
                claimed, cls.job_options, None, error, permanent=True, span=span
            )
        transaction = CompletingTransaction(self._store, claimed, self._worker_id)
        job._context = JobContext(
            job_id=claimed.id,
            queue=claimed.queue,
            attempt=claimed.attempt,
            max_attempts=self._max_attempts(claimed, cls.job_options),
            worker_id=self._worker_id,
            open_transaction=transaction.open,
        )
        timeout = cls.job_options.timeout or self._defaults.timeout
        deadline = None if timeout is None else asyncio.timeout(timeout.total_seconds())
        try:
            try:
                if claimed.depends_on:
                    job._context = dataclasses.replace(
                        job.context, parent_results=await self._parent_results(claimed)
                    )
                returned = await _call_handle(job, deadline)
                result = result_json(cls, returned)  # InvalidResult fails the attempt
                await transaction.commit_with(result)
            finally:
                await transaction.close()  # rolls back unless committed
        except Retry as snooze:
            await self._completer.snooze(claimed, snooze.delay)
            return "snoozed"
        except BaseException as error:
            if isinstance(error, asyncio.CancelledError) and _cancelled_by_worker():
                raise
            failure = (
                TimeoutError(f"job exceeded its timeout of {timeout}")
                if deadline is not None and deadline.expired()
                else error
            )
            options = cls.job_options
            permanent = is_permanent(failure, options.retry_on, options.give_up_on)
            return await self._fail(claimed, options, job, failure, permanent=permanent, span=span)
        if transaction.committed:
            self._completer.completed_elsewhere(claimed)
        else:
            self._completer.complete(claimed, result)
        return "completed"

    async def _parent_results(self, claimed: ClaimedJob) -> dict[int, Any]:
        """Each parent's result, typed by its class's handle() (None if it did not complete)."""
        results: dict[int, Any] = {}
        for parent in await self._store.parent_results(ids=claimed.depends_on):
            cls = self._registry.get(parent.job_type)
            adapter = None if cls is None else cls.result_adapter()
            if parent.result is None:
                results[parent.id] = None
            elif adapter is None:
                results[parent.id] = json.loads(parent.result)
            else:
                results[parent.id] = adapter.validate_json(parent.result)
        return {parent: results.get(parent) for parent in claimed.depends_on}

    def _max_attempts(self, claimed: ClaimedJob, options: JobOptions) -> int:
        """The row's (enqueue or builder), else the class's, else the worker's default."""
        if claimed.max_attempts is not None:
            return claimed.max_attempts
        retries = self._defaults.max_retries if options.max_retries is None else options.max_retries
        return max_attempts(retries)

    def _backoff(self, claimed: ClaimedJob, options: JobOptions) -> Backoff:
        backoff = options.backoff or self._defaults.backoff
        if claimed.retry_backoff is not None:  # the enqueuer chose this job's base delay
            backoff = dataclasses.replace(backoff, base=claimed.retry_backoff)
        return backoff

    async def _fail(
        self,
        claimed: ClaimedJob,
        options: JobOptions,
        job: Job | None,
        error: BaseException,
        *,
        permanent: bool,
        span: JobSpan,
    ) -> Outcome:
        span.failed(error)
        status = await self._completer.fail(
            claimed,
            error=_error_entry(claimed, self._worker_id, error),
            last_error=f"{type(error).__name__}: {error}",
            retry_delay=self._backoff(claimed, options).delay(claimed.attempt),
            permanent=permanent,
        )
        log.warning(
            "job %s (%s) attempt %s failed: %r -> %s",
            claimed.id,
            claimed.job_type,
            claimed.attempt,
            error,
            status,
        )
        if job is not None:
            job._context = dataclasses.replace(job.context, will_retry=status is JobStatus.PENDING)
            await self._call_hooks(job, error)
        if status is None:
            return "lost"
        return "retried" if status is JobStatus.PENDING else "failed"

    async def _call_hooks(self, job: Job, error: BaseException) -> None:
        for hook in self._error_hooks:
            try:
                outcome = hook(job, error)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("on_error hook %r raised; the worker carries on", hook)


async def _call_handle(job: Job, deadline: asyncio.Timeout | None) -> Any:
    if deadline is None:  # no timeout context at all: entering one costs every job something
        return await _invoke(job)
    async with deadline:
        return await _invoke(job)


async def _invoke(job: Job) -> Any:
    if _is_async(type(job)):
        return await job.handle()
    return await _in_daemon_thread(job.handle, f"pgqueue-job-{job.context.job_id}")


@functools.cache
def _is_async(cls: type[Job]) -> bool:
    return inspect.iscoroutinefunction(cls.handle)


def _cancelled_by_worker() -> bool:
    """Whether the current task was cancelled from outside (shutdown, Queue.cancel), rather
    than its handler raising CancelledError itself."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _in_daemon_thread(function: Callable[[], Any], name: str) -> Any:
    """Run a sync handler in a thread of its own. Daemon: a handler past its timeout cannot be
    interrupted, and a pooled thread would keep the process from exiting until it returns."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if outcome.done():  # cancelled: timeout or shutdown
            return
        if error is None:
            outcome.set_result(value)
        else:
            outcome.set_exception(error)

    def target() -> None:
        try:
            value, error = context.run(function), None
        except BaseException as raised:  # handed to the awaiting task, as run_in_executor does
            value, error = None, raised
        with contextlib.suppress(RuntimeError):  # the loop closed while the thread ran
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await outcome


def _error_entry(claimed: ClaimedJob, worker_id: UUID, error: BaseException) -> str:
    trace = "".join(traceback.format_exception(error))
    return to_json(
        {
            "attempt": claimed.attempt,
            "worker_id": worker_id,
            "type": type(error).__qualname__,
            "message": str(error),
            "traceback": trace[-_TRACEBACK_LIMIT:],
        }
    ).decode()
