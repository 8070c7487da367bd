"""OpenTelemetry: the enqueue's span context travels in the job's row, and the worker's span for
each attempt continues that trace (child and link), with its outcome; off, nothing is stored.

OpenTelemetry lets a process set its global tracer provider once, so this module sets one that
switches: to an SDK provider exporting to memory while a test here runs, else to the API's no-op
provider, so that the rest of the suite runs as without an SDK."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pgqueue import Backoff, Job, Queue, tracing
from tests.factories import eventually, running, status_of
from tests.jobs import (
    AlwaysFails,
    Echo,
    Flaky,
    OpensSpan,
    QueueLimitNap,
    Snoozer,
    SyncOpensSpan,
)

FAST_RETRIES = Backoff(base=timedelta(milliseconds=20), jitter=0)
REPOSITORY = Path(__file__).resolve().parents[2]


class SwitchedTracerProvider(trace.TracerProvider):
    """The global provider: ``recording`` while ``is_on``, else the API's no-op one."""

    def __init__(self, recording: TracerProvider) -> None:
        self.recording = recording
        self.is_on = False

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _SwitchedTracer(self, self.recording.get_tracer(*args, **kwargs))


class _SwitchedTracer(trace.Tracer):
    def __init__(self, switch: SwitchedTracerProvider, recording: trace.Tracer) -> None:
        self._switch = switch
        self._recording = recording
        self._off = trace.NoOpTracer()

    def _current(self) -> trace.Tracer:
        return self._recording if self._switch.is_on else self._off

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._current().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._current().start_as_current_span(*args, **kwargs)


@dataclass
class Tracing:
    exporter: InMemorySpanExporter
    tracer: trace.Tracer  # the application's own, for its request spans

    def spans(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]

    async def finished(self, name: str, count: int = 1) -> list[ReadableSpan]:
        """The spans called ``name``, once ``count`` of them have ended."""
        return await eventually(lambda: self.spans(name), until=lambda found: len(found) >= count)


@pytest.fixture(scope="session")
def switched_provider() -> tuple[SwitchedTracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    recording = TracerProvider()
    recording.add_span_processor(SimpleSpanProcessor(exporter))
    switched = SwitchedTracerProvider(recording)
    trace.set_tracer_provider(switched)
    assert trace.get_tracer_provider() is switched, "another tracer provider was set first"
    return switched, exporter


@pytest.fixture
async def tracing_on(
    switched_provider: tuple[SwitchedTracerProvider, InMemorySpanExporter],
) -> AsyncIterator[Tracing]:
    switched, exporter = switched_provider
    await eventually(tracing.is_enabled, until=bool)  # pgqueue looks for a provider once a second
    exporter.clear()
    switched.is_on = True
    try:
        yield Tracing(exporter, switched.recording.get_tracer("tests.app"))
    finally:
        switched.is_on = False
        exporter.clear()


def traceparent(span: trace.SpanContext | None) -> str:
    """The W3C traceparent header naming ``span``."""
    assert span is not None
    return f"00-{span.trace_id:032x}-{span.span_id:016x}-{span.trace_flags:02x}"


async def stored_contexts(
    db: asyncpg.Connection, ids: Sequence[int]
) -> list[dict[str, str] | None]:
    rows = await db.fetch(
        "SELECT trace_context::text FROM pgqueue.jobs WHERE id = ANY($1) ORDER BY id", list(ids)
    )
    return [None if row[0] is None else json.loads(row[0]) for row in rows]


# --- enqueue ---------------------------------------------------------------------------------


async def test_enqueue_stores_its_span_context_in_the_requests_trace(
    queue: Queue, db: asyncpg.Connection, tracing_on: Tracing
) -> None:
    with tracing_on.tracer.start_as_current_span("POST /orders") as request:
        job_id = await queue.enqueue(Echo(text="traced"))

    [producer] = tracing_on.spans("enqueue tests")
    request_context = request.get_span_context()
    assert producer.context is not None
    assert producer.parent is not None
    assert producer.context.trace_id == request_context.trace_id
    assert producer.parent.span_id == request_context.span_id
    assert producer.kind is SpanKind.PRODUCER
    assert dict(producer.attributes or {}) == {
        "messaging.system": "pgqueue",
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": "tests",
        "pgqueue.job_type": Echo.job_options.name,
        "messaging.message.id": str(job_id),
    }
    expected = traceparent(producer.context)
    assert await stored_contexts(db, [job_id]) == [{"traceparent": expected}]
    assert (await queue.get_job(job_id)).trace_context == {"traceparent": expected}


async def test_an_enqueue_outside_any_request_starts_a_trace(
    queue: Queue, db: asyncpg.Connection, tracing_on: Tracing
) -> None:
    job_id = await queue.enqueue(Echo(text="cron-like"))

    [producer] = tracing_on.spans("enqueue tests")
    assert producer.parent is None
    assert producer.context is not None
    assert await stored_contexts(db, [job_id]) == [{"traceparent": traceparent(producer.context)}]


async def _dispatch(queue: Queue) -> list[int]:
    return [await queue.dispatch(Echo(text="built")).with_priority(3)]


async def _by_name(queue: Queue) -> list[int]:
    return [await queue.enqueue_by_name(Echo.job_options.name, {"text": "named"})]


async def _batch(queue: Queue) -> list[int]:
    return await queue.enqueue_batch([Echo(text=str(n)) for n in range(3)])


async def _chain(queue: Queue) -> list[int]:
    return await queue.chain(Echo(text="a"), Echo(text="b"), Echo(text="c"))


async def _group(queue: Queue) -> list[int]:
    return await queue.group([Echo(text="a"), Echo(text="b")])


async def _group_then(queue: Queue) -> list[int]:
    return await queue.group([Echo(text="a"), Echo(text="b")]).then(Echo(text="after"))


@pytest.mark.parametrize(
    ("enqueue", "count"),
    [
        (_dispatch, 1),
        (_by_name, 1),
        (_batch, 3),
        (_chain, 3),
        (_group, 2),
        (_group_then, 3),
    ],
)
async def test_every_enqueue_path_is_one_span_whose_context_each_row_stores(
    queue: Queue,
    db: asyncpg.Connection,
    tracing_on: Tracing,
    enqueue: Callable[[Queue], Any],
    count: int,
) -> None:
    ids = await enqueue(queue)

    [producer] = tracing_on.spans("enqueue tests")
    assert producer.context is not None
    expected = {"traceparent": traceparent(producer.context)}
    assert await stored_contexts(db, ids) == [expected] * count
    attributes = producer.attributes or {}
    if count == 1:
        assert attributes["messaging.message.id"] == str(ids[0])
    else:
        assert attributes["messaging.batch.message_count"] == count
        assert "messaging.message.id" not in attributes


async def test_a_batch_names_only_what_its_jobs_share(
    queue: Queue, db: asyncpg.Connection, tracing_on: Tracing
) -> None:
    ids = await queue.enqueue_batch([Echo(text="x"), Snoozer(snoozes=0, log_path="unused")])
    ids += await queue.enqueue_batch([Echo(text="y"), QueueLimitNap()])

    [two_types] = tracing_on.spans("enqueue tests")
    [two_queues] = tracing_on.spans("enqueue")
    assert "pgqueue.job_type" not in (two_types.attributes or {})
    assert "messaging.destination.name" not in (two_queues.attributes or {})
    assert None not in await stored_contexts(db, ids)


async def test_a_duplicate_of_a_unique_job_keeps_the_holders_context(
    queue: Queue, db: asyncpg.Connection, tracing_on: Tracing
) -> None:
    first = await queue.enqueue(Echo(text="x"), unique_key="order-7")
    again = await queue.enqueue(Echo(text="x"), unique_key="order-7")

    original, duplicate = tracing_on.spans("enqueue tests")
    assert again == first
    assert again.existing
    assert (duplicate.attributes or {})["pgqueue.existing"] is True
    assert original.context is not None
    assert await stored_contexts(db, [first]) == [{"traceparent": traceparent(original.context)}]


# --- execution -------------------------------------------------------------------------------


async def test_the_attempt_continues_the_enqueuers_trace_as_child_and_link(
    queue: Queue, tracing_on: Tracing
) -> None:
    with tracing_on.tracer.start_as_current_span("POST /orders") as request:
        job_id = await queue.enqueue(Echo(text="traced"))
    async with running(queue) as worker:
        await queue.wait_for(job_id, 10)
        [process] = await tracing_on.finished("process tests")

    [producer] = tracing_on.spans("enqueue tests")
    assert producer.context is not None
    assert process.context is not None
    assert process.context.trace_id == request.get_span_context().trace_id
    assert process.parent is not None
    assert process.parent.span_id == producer.context.span_id
    [link] = process.links
    assert link.context.span_id == producer.context.span_id
    assert link.context.trace_id == producer.context.trace_id
    assert process.kind is SpanKind.CONSUMER
    assert process.status.status_code is StatusCode.UNSET
    assert dict(process.attributes or {}) == {
        "messaging.system": "pgqueue",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "tests",
        "messaging.message.id": str(job_id),
        "messaging.client.id": str(worker.id),
        "pgqueue.job_type": Echo.job_options.name,
        "pgqueue.attempt": 1,
        "pgqueue.outcome": "completed",
    }


@pytest.mark.parametrize("job", [OpensSpan(), SyncOpensSpan()], ids=["async", "sync"])
async def test_spans_the_handler_opens_are_children_of_the_attempt(
    queue: Queue, tracing_on: Tracing, job: Job
) -> None:
    job_id = await queue.enqueue(job)
    async with running(queue):
        await queue.wait_for(job_id, 10)
        [process] = await tracing_on.finished("process tests")

    [inside] = tracing_on.spans("inside handle")
    assert process.context is not None
    assert inside.parent is not None
    assert inside.parent.span_id == process.context.span_id


async def test_a_failed_attempt_is_an_error_with_its_exception_and_the_row_shows_it(
    queue: Queue, db: asyncpg.Connection, tracing_on: Tracing
) -> None:
    job_id = await queue.enqueue(AlwaysFails(), max_retries=0)
    async with running(queue):
        await eventually(lambda: queue.get_job_status(job_id), until=lambda s: s == "failed")
        [process] = await tracing_on.finished("process tests")

    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == "RuntimeError: attempt 1 fails"
    [event] = process.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "RuntimeError"
    assert (event.attributes or {})["exception.message"] == "attempt 1 fails"
    attributes = process.attributes or {}
    assert (attributes["pgqueue.outcome"], attributes["error.type"]) == ("failed", "RuntimeError")
    record = await queue.get_job(job_id)
    assert (record.status, record.attempts, record.last_error) == (
        "failed",
        1,
        "RuntimeError: attempt 1 fails",
    )
    assert [(error.attempt, error.type) for error in record.errors] == [(1, "RuntimeError")]


async def test_each_attempt_is_a_span_of_the_same_trace(queue: Queue, tracing_on: Tracing) -> None:
    job_id = await queue.enqueue(Flaky(succeed_on=2))
    async with running(queue, backoff=FAST_RETRIES):
        await queue.wait_for(job_id, 10)
        attempts = await tracing_on.finished("process tests", count=2)

    [producer] = tracing_on.spans("enqueue tests")
    assert producer.context is not None
    by_attempt = {(span.attributes or {})["pgqueue.attempt"]: span for span in attempts}
    assert sorted(by_attempt) == [1, 2]
    for span in attempts:
        assert span.parent is not None
        assert span.parent.span_id == producer.context.span_id
    first, second = by_attempt[1], by_attempt[2]
    assert (first.status.status_code, (first.attributes or {})["pgqueue.outcome"]) == (
        StatusCode.ERROR,
        "retried",
    )
    assert (second.status.status_code, (second.attributes or {})["pgqueue.outcome"]) == (
        StatusCode.UNSET,
        "completed",
    )


async def test_a_snooze_is_not_an_error(queue: Queue, tracing_on: Tracing, tmp_path: Path) -> None:
    job_id = await queue.enqueue(Snoozer(snoozes=1, log_path=str(tmp_path / "runs.log")))
    async with running(queue):
        await queue.wait_for(job_id, 10)
        attempts = await tracing_on.finished("process tests", count=2)

    outcomes = sorted(
        ((span.attributes or {})["pgqueue.outcome"], span.status.status_code, len(span.events))
        for span in attempts
    )
    assert outcomes == [("completed", StatusCode.UNSET, 0), ("snoozed", StatusCode.UNSET, 0)]


@pytest.mark.parametrize(
    "stored", ['{"traceparent": "not a traceparent"}', '{"traceparent": 7}', "{}"]
)
async def test_a_job_whose_stored_context_is_junk_runs_in_a_trace_of_its_own(
    queue: Queue, db: asyncpg.Connection, tracing_on: Tracing, stored: str
) -> None:
    job_id = await db.fetchval(
        'SELECT pgqueue.enqueue(job_type => $1, payload => \'{"text": "psql"}\','
        " queue => 'tests', trace_context => $2::jsonb)",
        Echo.job_options.name,
        stored,
    )
    async with running(queue):
        await queue.wait_for(job_id, 10)
        [process] = await tracing_on.finished("process tests")

    assert (process.parent, process.links) == (None, ())
    assert (process.attributes or {})["pgqueue.outcome"] == "completed"
    assert (await queue.get_job(job_id)).trace_context == json.loads(stored)


async def test_a_trace_context_that_is_no_json_object_is_refused(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_trace_context_check"):
        await db.fetchval("SELECT pgqueue.enqueue('x', trace_context => '\"a string\"')")


# --- off ---------------------------------------------------------------------------------------


async def test_without_a_recording_provider_nothing_is_stored_and_jobs_run(
    queue: Queue, db: asyncpg.Connection, switched_provider: tuple[SwitchedTracerProvider, Any]
) -> None:
    # The API's no-op tracer, as without an SDK: its spans are invalid and inject writes nothing.
    _, exporter = switched_provider
    await eventually(tracing.is_enabled, until=bool)  # pgqueue asks that tracer for its spans
    ids = [await queue.enqueue(Echo(text="x")), *await queue.enqueue_batch([Echo(text="y")])]
    async with running(queue):
        for job_id in ids:
            await queue.wait_for(job_id, 10)

    assert await stored_contexts(db, ids) == [None, None]
    assert exporter.get_finished_spans() == ()


WITHOUT_THE_PACKAGE = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
from pgqueue import Queue, tracing

async def main(dsn):
    async with Queue.connect(dsn) as queue:
        job_id = await queue.enqueue_by_name("tests.untraced", {})
    print(job_id, tracing.is_enabled())

asyncio.run(main(sys.argv[1]))
"""

WITHOUT_A_PROVIDER = """
import asyncio, sys
from opentelemetry import context, propagate
from pgqueue import Queue, tracing

async def main(dsn):
    # A request's incoming trace headers, with the API installed and no SDK.
    context.attach(propagate.extract({"traceparent": sys.argv[2]}))
    async with Queue.connect(dsn) as queue:
        job_id = await queue.enqueue_by_name("tests.untraced", {})
    print(job_id, tracing.is_enabled())

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize(
    "code", [WITHOUT_THE_PACKAGE, WITHOUT_A_PROVIDER], ids=["package absent", "no provider"]
)
async def test_a_process_that_does_not_trace_stores_no_context(
    dsn: str, db: asyncpg.Connection, code: str
) -> None:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "PGQUEUE_")) and key != "DATABASE_URL"
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        dsn,
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        cwd=REPOSITORY,
        env={**environment, "PYTHONPATH": str(REPOSITORY)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()

    job_id, is_enabled = stdout.decode().split()
    assert is_enabled == "False"
    assert await stored_contexts(db, [int(job_id)]) == [None]


class _FailingExtract(TraceContextTextMapPropagator):
    """A propagator that writes contexts but cannot read them back (a broken custom one)."""

    def extract(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("this propagator cannot read")


async def test_a_propagator_that_fails_leaves_the_job_to_run_untraced(
    queue: Queue, db: asyncpg.Connection, tracing_on: Tracing
) -> None:
    # Baggage set by the app stays out of the row: only the trace's own headers are kept.
    token = context.attach(baggage.set_baggage("user.id", "42"))
    try:
        with tracing_on.tracer.start_as_current_span("POST /baggage"):
            job_id = await queue.enqueue(Echo(text="x"))
    finally:
        context.detach(token)
    [stored] = await stored_contexts(db, [job_id])
    assert stored is not None
    assert set(stored) == {"traceparent"}

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(_FailingExtract())
    try:
        async with running(queue, queues=["tests"]):
            await eventually(lambda: status_of(db, job_id), until=lambda s: s == "completed")
    finally:
        propagate.set_global_textmap(previous)
    assert tracing_on.spans("process tests") == []
