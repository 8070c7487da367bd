"""The Job base class: a pydantic model whose fields are the payload; handle() does the work."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cache
from typing import Any, ClassVar, get_type_hints
from uuid import UUID

from pydantic import BaseModel, PrivateAttr, TypeAdapter, ValidationError

from pgqueue.durations import as_timedelta
from pgqueue.errors import InvalidResult, validation_summary
from pgqueue.options import JobOptions, check_max_retries, check_queue_name
from pgqueue.retry import Backoff


@dataclass(frozen=True)
class JobContext:
    """Where a running job stands: which row, which attempt, which worker.

    ``will_retry`` is set for ``on_error`` hooks: whether the failed attempt will be retried.
    """

    job_id: int
    queue: str
    attempt: int
    max_attempts: int
    worker_id: UUID
    will_retry: bool | None = None
    #: The results of the jobs this one depends on, by id in ``depends_on`` order, each typed by
    #: its class's ``handle()`` return annotation (None for a parent that did not complete).
    parent_results: Mapping[int, Any] = field(default_factory=dict)
    open_transaction: Callable[[], AbstractAsyncContextManager[Any]] | None = field(
        default=None, repr=False, compare=False
    )

    def parent_result(self) -> Any:
        """The result of this job's one parent (e.g. the previous job of a chain)."""
        if len(self.parent_results) != 1:
            raise LookupError(
                f"job {self.job_id} has {len(self.parent_results)} parents: read parent_results"
            )
        return next(iter(self.parent_results.values()))

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A transaction (yielding an asyncpg connection) that also completes this job.

        It commits when ``handle()`` returns, together with the job's completion and result;
        if ``handle()`` raises, or the worker dies first, neither happened and a retry does the
        work once: exactly-once effects for writes to this database. If the job was cancelled
        or rescued meanwhile it rolls back and the attempt fails with ClaimLost.
        """
        if self.open_transaction is None:
            raise RuntimeError("this job is not running in a worker, so it has no transaction")
        return self.open_transaction()


class Job(BaseModel):
    """Subclass with fields (the payload) and ``handle()``; class keywords set the defaults::

    class SendEmail(Job, queue="emails", max_retries=3, timeout=30):
        recipient: str

        async def handle(self) -> None: ...
    """

    job_options: ClassVar[JobOptions] = JobOptions(name="pgqueue.job.Job")
    _context: JobContext | None = PrivateAttr(default=None)

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        timeout: timedelta | float | None = None,
        backoff: Backoff | timedelta | float | None = None,
        retry_on: Iterable[type[BaseException]] | None = None,
        give_up_on: Iterable[type[BaseException]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        inherited = cls.job_options
        cls.job_options = replace(
            inherited,
            name=name or f"{cls.__module__}.{cls.__qualname__}",
            queue=check_queue_name(queue) if queue is not None else inherited.queue,
            max_retries=inherited.max_retries
            if max_retries is None
            else check_max_retries(max_retries),
            timeout=as_timedelta(timeout, "timeout") if timeout is not None else inherited.timeout,
            backoff=_as_backoff(backoff) if backoff is not None else inherited.backoff,
            retry_on=_exception_types(retry_on, "retry_on", inherited.retry_on),
            give_up_on=_exception_types(give_up_on, "give_up_on", inherited.give_up_on),
        )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.handle is not Job.handle:  # bases without handle() are not runnable job types
            for hook in _job_type_hooks:
                hook(cls)

    def handle(self) -> Any:
        """Do the work. ``async def`` runs on the worker's loop, plain ``def`` in a thread."""
        raise NotImplementedError

    @property
    def context(self) -> JobContext:
        """The running attempt; set by the worker before ``handle()`` is called."""
        # Read from pydantic's private store directly: ``self._context`` would take the slow
        # path of BaseModel.__getattr__, and handlers read their context all the time.
        context: JobContext | None = (self.__pydantic_private__ or {}).get("_context")
        if context is None:
            raise RuntimeError("this job is not running in a worker, so it has no context")
        return context

    @classmethod
    def result_adapter(cls) -> TypeAdapter[Any] | None:
        """Validates ``handle()``'s return value; None when it returns nothing."""
        result = _result_type(cls)
        return None if result is None else result.adapter


#: Called with each runnable Job class as it is defined: the registry's way in, since it maps
#: names to Job classes and so sits above this module (see ``on_job_type``).
_job_type_hooks: list[Callable[[type[Job]], None]] = []


def on_job_type(hook: Callable[[type[Job]], None]) -> None:
    """Call ``hook`` with each runnable Job class defined from now on (``pgqueue.registry``)."""
    _job_type_hooks.append(hook)


def _as_backoff(value: Backoff | timedelta | float) -> Backoff:
    """A Backoff, or its base delay (seconds or timedelta) for the default policy."""
    if isinstance(value, Backoff):
        return value
    base = as_timedelta(value, "backoff")
    assert base is not None
    return Backoff(base=base)


def _exception_types(
    value: Iterable[type[BaseException]] | None,
    what: str,
    inherited: tuple[type[BaseException], ...],
) -> tuple[type[BaseException], ...]:
    if value is None:
        return inherited
    types = tuple(value)
    if not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise TypeError(f"{what} must name exception classes, got {value!r}")
    return types


def result_json(cls: type[Job], returned: Any) -> str | None:
    """``handle()``'s return value as the JSON of the ``result`` column, None when it is
    declared to return None. Checked first against the declared type, as ``wait_for()`` and
    dependent jobs will load it (laxly: "5" for an int is 5): InvalidResult names the type
    and the value. Without an annotation the value is stored as returned, unchecked."""
    result = _result_type(cls)
    if result is None:
        return None
    if result.is_checked:
        try:
            returned = result.adapter.validate_python(returned)
        except ValidationError as error:
            raise InvalidResult(
                f"{cls.__qualname__}.handle() is declared to return {result.name} but returned "
                f"{_shorten(repr(returned))} ({type(returned).__qualname__}): "
                f"{validation_summary(error)}"
            ) from None
    return result.adapter.dump_json(returned).decode()


@dataclass(frozen=True)
class _ResultType:
    """What ``handle()`` declares it returns."""

    adapter: TypeAdapter[Any]
    name: str  # as the annotation reads
    is_checked: bool  # False without an annotation (Any): nothing to check


@cache
def _result_type(cls: type[Job]) -> _ResultType | None:
    """None when ``handle()`` returns None."""
    returns = get_type_hints(cls.handle).get("return", Any)
    if returns is type(None):
        return None
    name = returns.__qualname__ if isinstance(returns, type) else repr(returns)
    return _ResultType(TypeAdapter(returns), name.replace("typing.", ""), returns is not Any)


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
