"""pgqueue: a PostgreSQL-native durable job queue. Enqueue inside your transaction."""

from pgqueue.errors import (
    ConfigurationError,
    DuplicateJobType,
    InvalidJob,
    InvalidQueueName,
    JobCancelled,
    JobFailed,
    JobNotFound,
    PgQueueError,
    SchemaNotInstalled,
    UnregisteredJob,
    WaitTimeout,
)
from pgqueue.job import Job, JobContext
from pgqueue.queue import Queue
from pgqueue.records import JobError, JobRecord, JobStatus, QueueStats
from pgqueue.retry import Backoff
from pgqueue.worker import Worker

__all__ = [
    "Backoff",
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
    "PgQueueError",
    "Queue",
    "QueueStats",
    "SchemaNotInstalled",
    "UnregisteredJob",
    "WaitTimeout",
    "Worker",
]
