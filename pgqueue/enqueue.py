"""Turning a Job and its enqueue options into a validated row, before anything is written."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from pgqueue.durations import MAX_DURATION, as_timedelta
from pgqueue.errors import InvalidJob, UnregisteredJob, validation_summary
from pgqueue.job import Job
from pgqueue.options import (
    MAX_PRIORITY,
    EnqueueOptions,
    JobOptions,
    check_max_retries,
    check_queue_name,
    max_attempts,
)
from pgqueue.records import MAX_JOB_ID
from pgqueue.registry import registry
from pgqueue.rows import NewJob

_JOB_TYPE_MAX = 255
# A JSON \u0000 escape (jsonb cannot store NUL), not preceded by an escaped backslash.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def prepare(job: object, options: EnqueueOptions) -> NewJob:
    """Validate a job and its options into a row; raise InvalidJob and write nothing if bad."""
    return prepare_batch([job], options)[0]


def prepare_batch(jobs: Sequence[object], options: EnqueueOptions) -> list[NewJob]:
    """``prepare`` for jobs that share ``options``: they are checked once per job class, not
    once per job, which was half of what a batch spent in Python."""
    rows: list[NewJob] = []
    first_rows: dict[type[Job], NewJob] = {}
    for job in jobs:
        registered = _registered(job)
        payload = _payload(registered)
        cls = type(registered)
        first = first_rows.get(cls)
        if first is None:
            first = first_rows[cls] = _row(cls.job_options.name, payload, options, cls.job_options)
            rows.append(first)
        else:
            _check_payload(first.job_type, payload)
            rows.append(first.with_payload(payload))
    return rows


def _registered(job: object) -> Job:
    if not isinstance(job, Job) or not registry.is_registered(type(job)):
        raise UnregisteredJob(
            f"{type(job).__qualname__} is not a registered job class: subclass pgqueue.Job "
            "and define handle()"
        )
    return job


def _payload(job: Job) -> str:
    """The job as JSON, checked to load back as the worker will load it."""
    cls = type(job)
    try:
        payload = job.model_dump_json()
        cls.model_validate_json(payload)  # what the worker will load must validate too
    except ValidationError as error:
        raise InvalidJob(
            f"{cls.__qualname__} payload does not validate: {validation_summary(error)}"
        ) from error
    except (ValueError, TypeError) as error:
        raise InvalidJob(f"{cls.__qualname__} payload does not validate: {error}") from error
    return payload


def prepare_by_name(job_type: str, payload: object, options: EnqueueOptions) -> NewJob:
    """A row for a job given by its registered name and a JSON object (operators, other tools).

    A job type registered in this process is validated by its class; any other is written as
    given (its worker validates it when it runs).
    """
    cls = registry.get(job_type)
    if cls is not None:
        try:
            job = cls.model_validate(payload)
        except ValidationError as error:
            raise InvalidJob(
                f"payload does not validate as {job_type}: {validation_summary(error)}"
            ) from error
        return prepare(job, options)
    if not isinstance(payload, dict):
        raise InvalidJob(f"the payload must be a JSON object, got {type(payload).__name__}")
    if not 1 <= len(job_type) <= _JOB_TYPE_MAX:
        raise InvalidJob(f"job type {job_type!r} must be 1 to {_JOB_TYPE_MAX} characters")
    try:
        text = json.dumps(payload, allow_nan=False)
    except ValueError as error:  # NaN and infinities are not JSON, and jsonb refuses them
        raise InvalidJob(f"the {job_type} payload is not JSON: {error}") from error
    return _row(job_type, text, options, JobOptions(name=job_type))


def _row(job_type: str, payload: str, options: EnqueueOptions, defaults: JobOptions) -> NewJob:
    """The row for a JSON payload, the options checked and the class's defaults applied."""
    _check_payload(job_type, payload)
    # Most specific first: builder/enqueue keywords, then the class; else NULL, the worker's.
    max_retries = defaults.max_retries if options.max_retries is None else options.max_retries
    return NewJob(
        job_type=job_type,
        payload=payload,
        queue=check_queue_name(options.queue if options.queue is not None else defaults.queue),
        run_at=_check_run_at(options.run_at, options.delay),
        delay=_as_delta(options.delay, "delay"),
        priority=_check_range("priority", options.priority or 0, -MAX_PRIORITY, MAX_PRIORITY),
        max_attempts=None if max_retries is None else max_attempts(_check_max_retries(max_retries)),
        retry_backoff=_as_delta(options.backoff, "backoff"),
        unique_key=_check_unique_key(options.unique_key, options.unique_for),
        unique_for=_as_delta(options.unique_for, "unique_for"),
        depends_on=_check_parents(options.depends_on),
        run_anyway=_check_run_anyway(options.run_anyway, options.depends_on),
    )


def _check_payload(job_type: str, payload: str) -> None:
    if _NUL_ESCAPE.search(payload):
        raise InvalidJob(
            f"the {job_type} payload contains a NUL character (\\u0000), which PostgreSQL "
            "cannot store in jsonb: remove it or encode the value"
        )


#: The longest unique_key in UTF-8 bytes: a btree entry must fit a third of a page.
UNIQUE_KEY_MAX_BYTES = 2000


def _check_unique_key(key: object, unique_for: object) -> str | None:
    if key is None:
        if unique_for is not None:
            raise InvalidJob("unique_for needs a unique_key")
        return None
    if not isinstance(key, str) or not key:
        raise InvalidJob(f"unique_key must be a non-empty string, got {key!r}")
    if "\x00" in key:
        raise InvalidJob("unique_key contains a NUL character, which PostgreSQL cannot store")
    if len(key.encode()) > UNIQUE_KEY_MAX_BYTES:
        raise InvalidJob(
            f"unique_key is {len(key.encode())} bytes long; at most {UNIQUE_KEY_MAX_BYTES} fit "
            "its index: hash a longer key"
        )
    return key


def _check_parents(parents: object) -> tuple[int, ...]:
    if parents is None:
        return ()
    if isinstance(parents, str | bytes) or not isinstance(parents, Sequence):
        raise InvalidJob(f"depends_on must be a list of job ids, got {parents!r}")
    for parent in parents:
        if isinstance(parent, bool) or not isinstance(parent, int) or not 1 <= parent <= MAX_JOB_ID:
            raise InvalidJob(
                f"depends_on must hold job ids (positive ints up to 2**63 - 1), got {parent!r}"
            )
    return tuple(parents)


def _check_run_anyway(run_anyway: object, parents: object) -> bool:
    if not isinstance(run_anyway, bool):
        raise InvalidJob(f"run_anyway must be a bool, got {run_anyway!r}")
    if run_anyway and not parents:
        raise InvalidJob("run_anyway applies to a job with depends_on")
    return run_anyway


def _check_run_at(run_at: datetime | None, delay: object) -> datetime | None:
    if run_at is None:
        return None
    if delay is not None:
        raise InvalidJob("give run_at or delay, not both")
    if not isinstance(run_at, datetime) or run_at.utcoffset() is None:
        raise InvalidJob(
            f"run_at {run_at!r} has no timezone: pass an aware datetime, "
            "e.g. datetime.now(timezone.utc) + timedelta(hours=1)"
        )
    # Aware datetimes subtract without converting, so this holds for any of them (and keeps
    # out datetime.max and min, which asyncpg would send as infinity and -infinity).
    if abs(run_at - datetime.now(UTC)) > MAX_DURATION:
        raise InvalidJob(
            f"run_at {run_at.isoformat()} is more than a century from now: pass a time within "
            f"{MAX_DURATION.days} days of now (one in the past runs at once)"
        )
    return run_at


def _as_delta(value: timedelta | float | None, what: str) -> timedelta | None:
    try:
        return as_timedelta(value, what)
    except (ValueError, TypeError) as error:
        raise InvalidJob(str(error)) from error


def _check_max_retries(value: object) -> int:
    try:
        return check_max_retries(value)
    except ValueError as error:
        raise InvalidJob(str(error)) from error


def _check_range(what: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidJob(f"{what} must be an int from {low} to {high}, got {value!r}")
    return value
