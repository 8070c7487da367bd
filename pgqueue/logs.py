"""Log lines about a job name it: id, queue, type, attempt and worker, also in the handler's own
logging; as text, or as one JSON object per line (``--log-format json``).

The worker sets the running job in a context variable of the job's task, so every record
logged while the job runs (its thread too, for a sync handler) is tagged, whichever logger
wrote it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
JOB_FIELDS = ("job_id", "queue", "job_type", "attempt", "worker_id")

_current_job: ContextVar[dict[str, Any] | None] = ContextVar("pgqueue_job", default=None)


@contextmanager
def job_logging(**fields: Any) -> Iterator[None]:
    """Tag the records logged inside (this task and what it starts) with ``fields``."""
    token = _current_job.set(fields)
    try:
        yield
    finally:
        _current_job.reset(token)


class _JobFilter(logging.Filter):
    """Copies the running job's fields onto the record, unless the call gave its own (extra=)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _current_job.get()
        if fields is not None:
            for key, value in fields.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = " ".join(f"{key}={getattr(record, key)}" for key in _job_keys(record))
        return f"{line} [{tags}]" if tags else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the job's
    fields when the record is about a job, and the exception's traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, getattr(record, key)) for key in _job_keys(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _job_keys(record: logging.LogRecord) -> list[str]:
    return [key for key in JOB_FIELDS if getattr(record, key, None) is not None]


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Log to stderr at ``level``, in ``log_format``, job fields included."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobFilter())
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler])
