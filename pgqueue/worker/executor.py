"""Runs one claimed job: validate it, call handle() under its timeout, record the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import logging
import threading
import traceback
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from pydantic_core import to_json

from pgqueue.job import Job, JobContext
from pgqueue.registry import Registry
from pgqueue.retry import Backoff
from pgqueue.store import ClaimedJob
from pgqueue.worker.completer import Completer

log = logging.getLogger("pgqueue.worker")

ErrorHook = Callable[[Job, BaseException], Awaitable[None] | None]

_TRACEBACK_LIMIT = 8000  # characters of traceback kept per attempt


class JobExecutor:
    def __init__(
        self,
        *,
        registry: Registry,
        completer: Completer,
        worker_id: UUID,
        timeout: timedelta | None,
        backoff: Backoff,
        error_hooks: list[ErrorHook],
    ) -> None:
        self._registry = registry
        self._completer = completer
        self._worker_id = worker_id
        self._timeout = timeout
        self._backoff = backoff
        self._error_hooks = error_hooks

    async def run(self, claimed: ClaimedJob) -> None:
        """Run one attempt. Cancellation (worker shutdown) propagates and records nothing."""
        cls = self._registry.get(claimed.job_type)
        assert cls is not None, "the claim only returns registered job types"
        try:
            job = cls.model_validate_json(claimed.payload)
        except ValidationError as error:  # retrying cannot make a bad payload valid
            await self._fail(claimed, None, error, permanent=True)
            return
        job._context = JobContext(
            job_id=claimed.id,
            queue=claimed.queue,
            attempt=claimed.attempt,
            max_attempts=claimed.max_attempts,
            worker_id=self._worker_id,
        )
        timeout = cls.job_options.timeout or self._timeout
        deadline = asyncio.timeout(None if timeout is None else timeout.total_seconds())
        try:
            async with deadline:
                returned = await self._call_handle(job)
            result = _serialize_result(cls, returned)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # even SystemExit must not leave the job running
            timed_out = TimeoutError(f"job exceeded its timeout of {timeout}")
            await self._fail(claimed, job, timed_out if deadline.expired() else error)
        else:
            self._completer.complete(claimed, result)

    async def _call_handle(self, job: Job) -> Any:
        if inspect.iscoroutinefunction(job.handle):
            return await job.handle()
        return await _in_daemon_thread(job.handle, f"pgqueue-job-{job.context.job_id}")

    async def _fail(
        self, claimed: ClaimedJob, job: Job | None, error: BaseException, *, permanent: bool = False
    ) -> None:
        entry = _error_entry(claimed, self._worker_id, error)
        backoff = self._backoff
        if claimed.retry_backoff is not None:  # the enqueuer chose this job's base delay
            backoff = dataclasses.replace(backoff, base=claimed.retry_backoff)
        status = await self._completer.fail(
            claimed,
            error=entry,
            last_error=f"{type(error).__name__}: {error}",
            retry_delay=backoff.delay(claimed.attempt),
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
            await self._call_hooks(job, error)

    async def _call_hooks(self, job: Job, error: BaseException) -> None:
        for hook in self._error_hooks:
            try:
                outcome = hook(job, error)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("on_error hook %r raised; the worker carries on", hook)


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


def _serialize_result(cls: type[Job], returned: Any) -> str | None:
    adapter = cls.result_adapter()
    if adapter is None:
        return None
    return adapter.dump_json(returned).decode()


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
