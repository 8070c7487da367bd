"""pgqueue: a PostgreSQL-native durable job queue. Enqueue inside your transaction."""

from pgqueue.errors import (
    ClaimLost,
    ConfigurationError,
    DuplicateJobType,
    InvalidDsn,
    InvalidJob,
    InvalidQueueName,
    JobCancelled,
    JobFailed,
    JobNotFound,
    PgQueueError,
    ScheduleNotFound,
    SchemaNotInstalled,
    SchemaOutdated,
    UnregisteredJob,
    WaitTimeout,
)
from pgqueue.job import Job, JobContext
from pgqueue.limits import QueueLimit
from pgqueue.queue import Queue
from pgqueue.records import (
    EnqueuedJob,
    JobError,
    JobLink,
    JobRecord,
    JobRelations,
    JobStatus,
    JobSummary,
    QueueOverview,
    QueueStats,
    QueueSummary,
    ScheduleRecord,
    ThroughputMinute,
    WorkerLink,
    WorkerRecord,
)
from pgqueue.retention import Retention
from pgqueue.retry import Backoff, PermanentError, Retry
from pgqueue.schedule import schedule
from pgqueue.worker import Worker

__all__ = [
    "Backoff",
    "ClaimLost",
    "ConfigurationError",
    "DuplicateJobType",
    "EnqueuedJob",
    "InvalidDsn",
    "InvalidJob",
    "InvalidQueueName",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobError",
    "JobFailed",
    "JobLink",
    "JobNotFound",
    "JobRecord",
    "JobRelations",
    "JobStatus",
    "JobSummary",
    "PermanentError",
    "PgQueueError",
    "Queue",
    "QueueLimit",
    "QueueOverview",
    "QueueStats",
    "QueueSummary",
    "Retention",
    "Retry",
    "ScheduleNotFound",
    "ScheduleRecord",
    "SchemaNotInstalled",
    "SchemaOutdated",
    "ThroughputMinute",
    "UnregisteredJob",
    "WaitTimeout",
    "Worker",
    "WorkerLink",
    "WorkerRecord",
    "schedule",
]
