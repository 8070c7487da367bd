"""Log records logged while a job runs carry its fields, in both formats."""

from __future__ import annotations

import json
import logging

from pgqueue.logs import JsonFormatter, _JobFilter, _TextFormatter, job_logging


def formatted(formatter: logging.Formatter, message: str, **extra: object) -> str:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    _JobFilter().filter(record)
    return formatter.format(record)


def test_text_lines_about_a_job_end_with_its_fields_and_others_are_unchanged() -> None:
    text = _TextFormatter("%(levelname)s %(message)s")
    with job_logging(job_id=7, queue="emails", job_type="send", attempt=2, worker_id="w"):
        inside = formatted(text, "sending")
    outside = formatted(text, "idle")

    assert inside == "INFO sending [job_id=7 queue=emails job_type=send attempt=2 worker_id=w]"
    assert outside == "INFO idle"


def test_json_lines_carry_the_job_and_a_callers_extra_wins() -> None:
    with job_logging(job_id=7, queue="emails", job_type="send", attempt=2, worker_id="w"):
        entry = json.loads(formatted(JsonFormatter(), "sending", job_id=8))

    assert entry["message"] == "sending"
    assert entry["level"] == "info"
    assert (entry["job_id"], entry["queue"], entry["attempt"]) == (8, "emails", 2)
    assert entry["time"].endswith("+00:00")
