"""pgqueue: a PostgreSQL-native durable job queue. Enqueue inside your transaction."""

from pgqueue.errors import (
    ClaimLost,
    ConfigurationError,
    DuplicateJobType,
    InvalidJob,
    InvalidQueueName,
    JobCancelled,
    JobFailed,
    JobNotFound,
    PgQueueError,
    SchemaNotInstalled,
    SchemaOutdated,
    UnregisteredJob,
    WaitTimeout,
)
from pgqueue.job import Job, JobContext
from pgqueue.queue import Queue
from pgqueue.records import (
    JobError,
    JobRecord,
    JobStatus,
    QueueOverview,
    QueueStats,
    WorkerRecord,
)
from pgqueue.retention import Retention
from pgqueue.retry import Backoff, PermanentError, Retry
from pgqueue.worker import Worker

__all__ = [
    "Backoff",
    "ClaimLost",
    "ConfigurationError",
    "DuplicateJobType",
    "InvalidJob",
    "InvalidQueueName",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobError",
    "JobFailed",
    "JobNotFound",
    "JobRecord",
    "JobStatus",
    "PermanentError",
    "PgQueueError",
    "Queue",
    "QueueOverview",
    "QueueStats",
    "Retention",
    "Retry",
    "SchemaNotInstalled",
    "SchemaOutdated",
    "UnregisteredJob",
    "WaitTimeout",
    "Worker",
    "WorkerRecord",
]
