"""Every exception pgqueue raises on purpose.

PgQueueError
├── ConfigurationError      settings, DSN or embedded server unusable
│   └── InvalidDsn (ValueError) the DSN is not a PostgreSQL URL asyncpg can use
├── SchemaNotInstalled      the database has no pgqueue schema: run `pgqueue migrate`
├── SchemaOutdated          the schema is older than this pgqueue: run `pgqueue migrate`
├── InvalidJob (ValueError) enqueue input rejected before anything is written
│   ├── InvalidQueueName
│   └── UnregisteredJob
├── DuplicateJobType        two Job classes claim one registered name
├── InvalidResult (ValueError) handle() returned what its annotation does not allow
├── ClaimLost               the worker no longer holds the job (cancelled or rescued)
├── JobNotFound (LookupError)
├── ScheduleNotFound (LookupError)
├── JobFailed               wait_for(): the job ended failed
├── JobCancelled            wait_for(): the job was cancelled
└── WaitTimeout (TimeoutError)
"""

from __future__ import annotations

from pydantic import ValidationError


class PgQueueError(Exception):
    """Base of every error pgqueue raises on purpose."""


class ConfigurationError(PgQueueError):
    """A setting, the DSN or the embedded server cannot be used."""


class InvalidDsn(ConfigurationError, ValueError):
    """The DSN is not a PostgreSQL URL that asyncpg can use; its message hides any password."""


class SchemaNotInstalled(PgQueueError):
    """The database has no pgqueue schema."""

    def __init__(self) -> None:
        super().__init__(
            "the database has no pgqueue schema: run `pgqueue migrate` (or alembic) first"
        )


class SchemaOutdated(PgQueueError):
    """The database's pgqueue schema is older than this version of pgqueue needs."""

    def __init__(self, found: str, needed: str) -> None:
        super().__init__(
            f"the database's pgqueue schema is at revision {found} but this pgqueue needs "
            f"{needed}: run `pgqueue migrate`"
        )


class ClaimLost(PgQueueError):
    """The worker no longer holds the job: it was cancelled, or rescued by another worker."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            f"job {job_id} is no longer held by this worker (cancelled, or rescued after missed "
            "heartbeats): its transaction was rolled back"
        )


class InvalidJob(PgQueueError, ValueError):
    """Enqueue input was rejected; nothing was written."""


class InvalidQueueName(InvalidJob):
    """A queue name is not an identifier pgqueue accepts."""

    def __init__(self, name: object) -> None:
        super().__init__(
            f"queue name {name!r} is invalid: use 1 to 63 letters, digits, '_', '-' or '.'"
        )


class UnregisteredJob(InvalidJob):
    """The object is not an instance of a registered Job class."""


class DuplicateJobType(PgQueueError):
    """Two different Job classes were registered under one name."""


class InvalidResult(PgQueueError, ValueError):
    """handle() returned a value its return annotation does not allow: the attempt fails."""


class JobNotFound(PgQueueError, LookupError):
    """No job has this id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id}")
        self.job_id = job_id


class ScheduleNotFound(PgQueueError, LookupError):
    """No schedule has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class JobFailed(PgQueueError):
    """The awaited job ended in the dead letter queue."""

    def __init__(self, job_id: int, last_error: str | None) -> None:
        super().__init__(f"job {job_id} failed: {last_error}")
        self.job_id = job_id
        self.last_error = last_error


class JobCancelled(PgQueueError):
    """The awaited job was cancelled."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} was cancelled")
        self.job_id = job_id


class WaitTimeout(PgQueueError, TimeoutError):
    """The awaited job did not finish in time."""

    def __init__(self, job_id: int, status: str, timeout: float) -> None:
        super().__init__(f"job {job_id} is still {status} after {timeout:g}s")
        self.job_id = job_id
        self.status = status


def validation_summary(error: ValidationError) -> str:
    """Pydantic's errors on one line, without the input (a payload may hold secrets)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
        for e in error.errors(include_url=False, include_context=False, include_input=False)
    )
