"""OpenTelemetry spans around enqueue and job execution; the only module that imports OpenTelemetry.

An enqueue stores the W3C trace headers of its span in the job's row (``trace_context``), and
the attempt that runs the job continues that trace. Spans follow OpenTelemetry's messaging
conventions:

- ``enqueue {queue}``, kind PRODUCER: one per enqueue call (a batch, chain or group is one
  call, and all its rows store its context). ``messaging.message.id`` is set when one job was
  enqueued.
- ``process {queue}``, kind CONSUMER: one per attempt, a child of the stored context and linked
  to it. A failed attempt records its exception and has status ERROR (also when it will be
  retried); a ``Retry`` (a snooze) and a worker's own cancellation (shutdown, ``Queue.cancel``)
  are not errors. ``pgqueue.outcome`` says how the attempt ended.

Tracing is on when ``opentelemetry-api`` is installed (the ``otel`` extra) and a tracer provider
other than the API's default no-op one has been set (an SDK's, or ``opentelemetry-instrument``'s).
Otherwise ``enqueue_span`` and ``job_span`` return no-ops after checking a module global, and
``trace_context`` stays NULL. While no provider is set, pgqueue looks for one at most once a
second (asking the API costs a microsecond, too much for every job), and it imports OpenTelemetry
only once the application has (about 30 ms at start otherwise).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self
from uuid import UUID

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

log = logging.getLogger("pgqueue.tracing")

_LOOK_EVERY = 1.0  # seconds between looks for a tracer provider while none is set
_SYSTEM = "pgqueue"  # messaging.system

_tracer: Tracer | None = None  # set once a provider is: the API lets it be set only once
_next_look = 0.0


def is_enabled() -> bool:
    """Whether enqueues and attempts are traced now (a tracer provider has been set)."""
    return _active_tracer() is not None


def _active_tracer() -> Tracer | None:
    global _tracer, _next_look
    if _tracer is not None:
        return _tracer
    now = time.monotonic()
    if now < _next_look:
        return None
    _next_look = now + _LOOK_EVERY
    _tracer = _look_for_tracer()
    return _tracer


def _look_for_tracer() -> Tracer | None:
    # An application that traces has imported the API to set its provider, or names one in
    # OTEL_PYTHON_TRACER_PROVIDER for the API to load.
    if "opentelemetry.trace" not in sys.modules and "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ:
        return None
    try:
        from opentelemetry import trace
    except ImportError:  # the otel extra is not installed: tracing is off
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider.get_tracer("pgqueue", _pgqueue_version())


def _pgqueue_version() -> str | None:
    try:
        return version("pgqueue")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return None


# --- enqueue ---------------------------------------------------------------------------------


class _NewRow(Protocol):
    @property
    def queue(self) -> str: ...

    @property
    def job_type(self) -> str: ...


class _Untraced:
    """A span that records nothing: the base of both kinds, and what they are while tracing is
    off."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return None


class EnqueueSpan(_Untraced):
    """An enqueue's span: ``carrier`` is the JSON text to store in the rows (None: nothing to
    store). This base class is the no-op used while tracing is off."""

    carrier: str | None = None

    def enqueued(self, job_id: int, *, existing: bool) -> None:
        """The job one enqueue inserted, or the live job holding its unique_key."""


_UNTRACED_ENQUEUE = EnqueueSpan()


def enqueue_span(rows: Sequence[_NewRow]) -> EnqueueSpan:
    """The span around one enqueue call of ``rows`` (one, or a batch, chain or group)."""
    tracer = _active_tracer()
    if tracer is None:
        return _UNTRACED_ENQUEUE
    return _TracedEnqueue(tracer, rows)


class _TracedEnqueue(EnqueueSpan):
    def __init__(self, tracer: Tracer, rows: Sequence[_NewRow]) -> None:
        from opentelemetry.trace import SpanKind

        queues = {row.queue for row in rows}
        job_types = {row.job_type for row in rows}
        queue = queues.pop() if len(queues) == 1 else None  # a batch may span queues
        attributes: dict[str, AttributeValue] = {
            "messaging.system": _SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "enqueue",
        }
        if queue is not None:
            attributes["messaging.destination.name"] = queue
        if len(job_types) == 1:
            attributes["pgqueue.job_type"] = job_types.pop()
        if len(rows) != 1:
            attributes["messaging.batch.message_count"] = len(rows)
        # An exception leaving the block is recorded and sets status ERROR (the API's default).
        self._scope: AbstractContextManager[Span] = tracer.start_as_current_span(
            "enqueue" if queue is None else f"enqueue {queue}",
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        )

    def __enter__(self) -> Self:
        from opentelemetry import propagate

        self._span = self._scope.__enter__()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the current context: this span
        # Baggage often carries user ids or the like: not for a row that the API shows and that
        # outlives the request. The trace needs only traceparent and tracestate.
        carrier.pop("baggage", None)
        self.carrier = json.dumps(carrier) if carrier else None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return self._scope.__exit__(exc_type, exc, tb)

    def enqueued(self, job_id: int, *, existing: bool) -> None:
        self._span.set_attribute("messaging.message.id", str(job_id))
        if existing:  # its unique_key was held: nothing inserted, the holder keeps its context
            self._span.set_attribute("pgqueue.existing", True)


# --- execution -------------------------------------------------------------------------------


class _ClaimedRow(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def queue(self) -> str: ...

    @property
    def job_type(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def trace_context(self) -> str | None: ...


class JobSpan(_Untraced):
    """An attempt's span, as the executor tells it how the attempt went. This base class is the
    no-op used while tracing is off."""

    def failed(self, error: BaseException) -> None:
        """The attempt failed with ``error`` (retried or not)."""

    def ended(self, outcome: str) -> None:
        """How the attempt ended: completed, failed, retried, snoozed or lost (the executor's
        outcomes), or interrupted (its worker cancelled it)."""


_UNTRACED_JOB = JobSpan()


def job_span(job: _ClaimedRow, worker_id: UUID) -> JobSpan:
    """The span around one attempt of ``job``, continuing the trace its enqueuer stored."""
    tracer = _active_tracer()
    if tracer is None:
        return _UNTRACED_JOB
    try:
        return _TracedJob(tracer, job, worker_id)
    except Exception:  # a stored context or a propagator that fails must not keep it from running
        log.warning("job %s runs untraced: its trace context failed", job.id, exc_info=True)
        return _UNTRACED_JOB


class _TracedJob(JobSpan):
    def __init__(self, tracer: Tracer, job: _ClaimedRow, worker_id: UUID) -> None:
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace import Link, SpanKind

        # With no stored context the span starts a trace of its own: never a child of whatever
        # span the worker itself was started in.
        parent = _stored_context(job.trace_context) or Context()
        enqueuer = trace.get_current_span(parent).get_span_context()
        self._scope: AbstractContextManager[Span] = tracer.start_as_current_span(
            f"process {job.queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=[Link(enqueuer)] if enqueuer.is_valid else None,
            attributes={
                "messaging.system": _SYSTEM,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": job.queue,
                "messaging.message.id": str(job.id),
                "messaging.client.id": str(worker_id),
                "pgqueue.job_type": job.job_type,
                "pgqueue.attempt": job.attempt,
            },
            record_exception=False,  # decided in __exit__ and failed()
            set_status_on_exception=False,
        )

    def __enter__(self) -> Self:
        self._span = self._scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if isinstance(exc, asyncio.CancelledError):  # the worker stopped it: not the job's fault
            self.ended("interrupted")
        elif exc is not None:
            self.failed(exc)
        return self._scope.__exit__(exc_type, exc, tb)

    def failed(self, error: BaseException) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.record_exception(error)
        self._span.set_attribute("error.type", type(error).__qualname__)
        self._span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))

    def ended(self, outcome: str) -> None:
        self._span.set_attribute("pgqueue.outcome", outcome)


def _stored_context(stored: str | None) -> Context | None:
    """The context in a row's trace_context (a JSON object: jobs_trace_context_check). Headers
    that are not strings are left out, and headers naming no valid trace give a context without
    a span: the job then runs in a trace of its own."""
    if stored is None:
        return None
    from opentelemetry import propagate
    from opentelemetry.context import Context

    carrier = json.loads(stored)
    headers = {key: value for key, value in carrier.items() if isinstance(value, str)}
    return propagate.extract(headers, context=Context())
