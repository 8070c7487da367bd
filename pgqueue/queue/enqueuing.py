"""The Queue's ways to enqueue: one job, a batch, a chain, a group, by name, and the
``dispatch()`` builder. Validation is ``pgqueue.enqueue``'s; writing is the store's.

The enqueue keywords are declared once, as TypedDicts: ``enqueue`` and ``dispatch`` take all
of them, ``enqueue_batch`` and ``enqueue_by_name`` the ones that apply to them.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Self, TypedDict, Unpack

from pgqueue.connections import executor_for
from pgqueue.enqueue import prepare, prepare_batch, prepare_by_name
from pgqueue.job import Job
from pgqueue.options import EnqueueOptions
from pgqueue.records import EnqueuedJob
from pgqueue.rows import NewJob
from pgqueue.store import JobStore
from pgqueue.tracing import enqueue_span


class _SharedKeywords(TypedDict, total=False):
    delay: timedelta | float | None
    priority: int | None
    queue: str | None
    max_retries: int | None


class BatchKeywords(_SharedKeywords, total=False):
    """What ``enqueue_batch`` takes: options that every job of the batch shares."""

    run_at: datetime | None
    backoff: timedelta | float | None


class ByNameKeywords(_SharedKeywords, total=False):
    """What ``enqueue_by_name`` takes."""

    unique_key: str | None
    depends_on: Sequence[int] | None


class EnqueueKeywords(BatchKeywords, ByNameKeywords, total=False):
    """Every enqueue keyword, as ``enqueue`` and ``dispatch`` take them; None (and
    ``run_anyway=False``) keeps the job class's default."""

    unique_for: timedelta | float | None
    run_anyway: bool


def _options(
    queue: object, method: str, keywords: Mapping[str, Any], accepted: type[Any]
) -> EnqueueOptions:
    """The options given, refusing a keyword that ``method`` does not take with Python's own
    error (a TypedDict is not checked at run time)."""
    for name in keywords:
        if name not in accepted.__optional_keys__:
            raise TypeError(
                f"{type(queue).__qualname__}.{method}() got an unexpected keyword argument {name!r}"
            )
    return EnqueueOptions(**keywords)


class Enqueuing:
    store: JobStore

    async def enqueue(
        self, job: Job, *, connection: object | None = None, **options: Unpack[EnqueueKeywords]
    ) -> EnqueuedJob:
        """Enqueue one job and return its id. With ``connection=``, inside that transaction.

        ``unique_key``: while a job with this key is pending or running (or completed less than
        ``unique_for`` ago), return that job's id, with ``.existing`` set, and insert nothing.
        ``depends_on``: run only once these jobs have completed; if one fails or is cancelled,
        this job is cancelled, unless ``run_anyway`` (then it runs once they have all finished).
        """
        return await self.enqueue_with(
            job, _options(self, "enqueue", options, EnqueueKeywords), connection
        )

    async def enqueue_with(
        self, job: Job, options: EnqueueOptions, connection: object | None = None
    ) -> EnqueuedJob:
        """Enqueue one job with options already gathered (the dispatch builder's path)."""
        return await self._enqueue_row(prepare(job, options), connection)

    async def enqueue_by_name(
        self,
        job_type: str,
        payload: object,
        *,
        connection: object | None = None,
        **options: Unpack[ByNameKeywords],
    ) -> EnqueuedJob:
        """Enqueue a job by its registered name with a JSON object as payload. With
        ``connection=``, inside that transaction.

        Validated by the class when it is registered in this process; else the worker does it.
        """
        row = prepare_by_name(
            job_type, payload, _options(self, "enqueue_by_name", options, ByNameKeywords)
        )
        return await self._enqueue_row(row, connection)

    async def _enqueue_row(self, row: NewJob, connection: object | None) -> EnqueuedJob:
        executor = None if connection is None else executor_for(connection)
        with enqueue_span((row,)) as span:
            enqueued = await self.store.enqueue(
                job=row, executor=executor, trace_context=span.carrier
            )
            span.enqueued(enqueued, existing=enqueued.existing)
        return enqueued

    async def enqueue_batch(
        self,
        jobs: Sequence[Job],
        *,
        connection: object | None = None,
        **options: Unpack[BatchKeywords],
    ) -> list[int]:
        """Enqueue many jobs in one round trip; ids come back in the order of ``jobs``."""
        rows = prepare_batch(jobs, _options(self, "enqueue_batch", options, BatchKeywords))
        if not rows:
            return []
        executor = None if connection is None else executor_for(connection)
        with enqueue_span(rows) as span:
            return await self.store.enqueue_batch(
                jobs=rows, executor=executor, trace_context=span.carrier
            )

    async def chain(self, *jobs: Job, connection: object | None = None) -> list[int]:
        """Enqueue jobs that run one after the other, each once the previous one has completed,
        in one transaction. Returns their ids in order."""
        if not jobs:
            raise ValueError("chain() needs at least one job")
        rows = prepare_batch(jobs, EnqueueOptions())  # all valid before any is written
        ids: list[int] = []
        with enqueue_span(rows) as span:  # one span, and one trace context, for the chain
            async with self.store.transaction(connection) as executor:
                for row in rows:
                    ids.append(
                        await self.store.enqueue(
                            job=replace(row, depends_on=tuple(ids[-1:])),
                            executor=executor,
                            trace_context=span.carrier,
                        )
                    )
        return ids

    def group(self, jobs: Sequence[Job], *, connection: object | None = None) -> JobGroup:
        """Jobs enqueued together in one transaction; ``.then(job)`` adds one that runs once
        they have all completed. Await either for the ids in order."""
        return JobGroup(self, jobs, connection)

    async def enqueue_graph(
        self,
        parents: Sequence[Job],
        child: Job | None,
        run_anyway: bool,
        connection: object | None,
    ) -> list[int]:
        """Enqueue ``parents``, then ``child`` depending on all of them, in one transaction."""
        if not parents:
            raise ValueError("group() needs at least one job")
        rows = prepare_batch(parents, EnqueueOptions())
        last = None if child is None else prepare(child, EnqueueOptions())
        with enqueue_span(rows if last is None else [*rows, last]) as span:
            async with self.store.transaction(connection) as executor:
                ids = await self.store.enqueue_batch(
                    jobs=rows, executor=executor, trace_context=span.carrier
                )
                if last is not None:
                    row = replace(last, depends_on=tuple(ids), run_anyway=run_anyway)
                    ids.append(
                        await self.store.enqueue(
                            job=row, executor=executor, trace_context=span.carrier
                        )
                    )
        return ids

    def dispatch(
        self, job: Job, *, connection: object | None = None, **options: Unpack[EnqueueKeywords]
    ) -> Dispatch:
        """An awaitable builder: ``await queue.dispatch(job).with_max_retries(5)``.

        Takes the keywords of ``enqueue``; a builder method overrides its keyword.
        """
        return Dispatch(self, job, _options(self, "dispatch", options, EnqueueKeywords), connection)


class Dispatch:
    """An awaitable enqueue builder: ``await queue.dispatch(job).with_max_retries(5)``."""

    def __init__(
        self, queue: Enqueuing, job: Job, options: EnqueueOptions, connection: object | None
    ) -> None:
        self._queue = queue
        self._job = job
        self._options = options
        self._connection = connection

    def _with(self, **changes: Any) -> Self:
        self._options = replace(self._options, **changes)
        return self

    def with_max_retries(self, max_retries: int) -> Self:
        return self._with(max_retries=max_retries)

    def with_backoff(self, backoff: timedelta | float) -> Self:
        """Base delay of the exponential retry backoff for this job."""
        return self._with(backoff=backoff)

    def with_delay(self, delay: timedelta | float) -> Self:
        return self._with(delay=delay)

    def with_run_at(self, run_at: datetime) -> Self:
        return self._with(run_at=run_at)

    def with_priority(self, priority: int) -> Self:
        return self._with(priority=priority)

    def on_queue(self, queue: str) -> Self:
        return self._with(queue=queue)

    def with_unique_key(self, key: str, unique_for: timedelta | float | None = None) -> Self:
        """While a live job holds ``key``, return that job instead of inserting another."""
        return self._with(unique_key=key, unique_for=unique_for)

    def after(self, *parents: int, run_anyway: bool = False) -> Self:
        """Run once these jobs have completed (``run_anyway``: once they have finished)."""
        return self._with(depends_on=parents, run_anyway=run_anyway)

    def using(self, connection: object) -> Self:
        """Enqueue inside this connection's transaction (asyncpg or SQLAlchemy)."""
        self._connection = connection
        return self

    async def enqueue(self) -> EnqueuedJob:
        return await self._queue.enqueue_with(self._job, self._options, self._connection)

    def __await__(self) -> Generator[Any, None, EnqueuedJob]:
        return self.enqueue().__await__()


class JobGroup:
    """Jobs enqueued together: ``await queue.group([a, b])``, or with a job that runs once they
    have all completed: ``await queue.group([a, b]).then(c)``. Returns the ids in order."""

    def __init__(self, queue: Enqueuing, jobs: Sequence[Job], connection: object | None) -> None:
        self._queue = queue
        self._jobs = list(jobs)
        self._connection = connection

    async def then(self, job: Job, *, run_anyway: bool = False) -> list[int]:
        """Enqueue the group and ``job``, which depends on every job of the group."""
        return await self._queue.enqueue_graph(self._jobs, job, run_anyway, self._connection)

    def __await__(self) -> Generator[Any, None, list[int]]:
        return self._queue.enqueue_graph(self._jobs, None, False, self._connection).__await__()
