"""The OpenAPI 3.1 description of the JSON API, its schemas drawn from the pydantic models the
endpoints use, so the two cannot drift apart."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pgqueue.dashboard.api import (
    CANCEL_RULE,
    NO_NUL,
    PAGE_SIZE,
    RETRY_RULE,
    Changed,
    Enqueued,
    EnqueueRequest,
    JobPageResponse,
    ProblemDetail,
    QueueName,
    StatsResponse,
)
from pgqueue.queue.reads import MAX_PAGE
from pgqueue.records import MAX_JOB_ID, JobRecord, JobStatus

_REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _body(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _problem(description: str) -> dict[str, Any]:
    return _body(ProblemDetail, description)


_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID},
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_LIST_PARAMETERS = [
    _query("queue", TypeAdapter(QueueName).json_schema(), "only this queue"),
    _query("status", {"type": "string", "enum": [s.value for s in JobStatus]}, "only this status"),
    _query("job_type", {"type": "string", "pattern": NO_NUL}, "only this job type"),
    _query(
        "since",
        {"type": "string", "format": "date-time"},
        "enqueued (finished, for a finished status) at or after",
    ),
    _query("until", {"type": "string", "format": "date-time"}, "... and before"),
    _query(
        "before_id",
        {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID},
        "the next page: the last job id of the previous one",
    ),
    _query(
        "before_finished_at",
        {"type": "string", "format": "date-time"},
        "for a finished status, with before_id: that job's finished_at (next_before_finished_at)",
    ),
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        f"jobs per page ({PAGE_SIZE})",
    ),
]


# Every POST: the dashboard's guard refuses one that is neither JSON nor a form with its CSRF
# token, one from another origin, and any on a read-only dashboard (a plain-text reason).
_REFUSED = {
    "description": "refused: not JSON (Content-Type: application/json), cross-origin, or the "
    "dashboard is read-only",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


def _action(verb: str, rule: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": f"{verb.capitalize()} a job",
            "description": rule,
            "operationId": f"{verb}_job",
            "parameters": [_JOB_ID],
            # No fields: the body is there for its Content-Type, which the guard requires.
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "200": _body(Changed, "done: the job's new status"),
                "403": _REFUSED,
                "404": _problem("no such job"),
                "409": _problem(f"the job's status does not allow it: {rule}"),
            },
        }
    }


@cache
def _document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        Changed,
        Enqueued,
        EnqueueRequest,
        JobPageResponse,
        JobRecord,
        ProblemDetail,
        StatsResponse,
    ]
    _, schemas = models_json_schema(
        [(m, "validation" if m is EnqueueRequest else "serialization") for m in models],
        ref_template=_REF,
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pgqueue",
            "version": "1",
            "description": "Enqueue jobs, read their status and result, retry and cancel them. "
            "POSTs take JSON (Content-Type: application/json).",
        },
        "paths": {
            "/api/stats": {
                "get": {
                    "summary": "Job counts, in all and per queue",
                    "operationId": "stats",
                    "responses": {"200": _body(StatsResponse, "counts by state")},
                }
            },
            "/api/jobs": {
                "get": {
                    "summary": "A page of jobs, newest first",
                    "operationId": "list_jobs",
                    "parameters": _LIST_PARAMETERS,
                    "responses": {
                        "200": _body(JobPageResponse, "one page, and the cursor of the next"),
                        "422": _problem("a filter is not valid"),
                    },
                },
                "post": {
                    "summary": "Enqueue a job by its type",
                    "description": "The payload is validated by the job type's model; the job "
                    "type must be registered with the dashboard (--app).",
                    "operationId": "enqueue_job",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(EnqueueRequest)}},
                    },
                    "responses": {
                        "201": _body(Enqueued, "enqueued"),
                        "200": _body(Enqueued, "a live job already held unique_key"),
                        "400": _problem("the body is not JSON"),
                        "413": _problem("the body is over 16 MiB"),
                        "403": _REFUSED,
                        "422": _problem("the request or the payload is not valid: the fields"),
                    },
                },
            },
            "/api/jobs/{job_id}": {
                "get": {
                    "summary": "A job: status, result, errors and timings",
                    "operationId": "get_job",
                    "parameters": [_JOB_ID],
                    "responses": {
                        "200": _body(JobRecord, "the job"),
                        "404": _problem("no such job"),
                    },
                }
            },
            "/api/jobs/{job_id}/retry": _action("retry", RETRY_RULE),
            "/api/jobs/{job_id}/cancel": _action("cancel", CANCEL_RULE),
        },
        "components": {"schemas": schemas["$defs"]},
    }


def document(root_path: str) -> dict[str, Any]:
    """The description, with the server at the path the app is mounted on."""
    return {**_document(), "servers": [{"url": root_path or "/"}]}


async def serve_document(request: Request) -> Response:
    """``GET /api/openapi.json``."""
    return JSONResponse(document(request.scope.get("root_path", "")))
