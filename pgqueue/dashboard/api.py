"""The JSON API under ``/api``: enqueue by job type, a job's status and result, lists, stats,
retry and cancel. The dashboard's pages call the same Queue methods; apps call these."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pgqueue.durations import MAX_DURATION
from pgqueue.enqueue import UNIQUE_KEY_MAX_BYTES
from pgqueue.errors import InvalidJob, JobNotFound
from pgqueue.options import MAX_PRIORITY, check_queue_name
from pgqueue.queue import Queue
from pgqueue.queue.reads import MAX_PAGE
from pgqueue.records import MAX_JOB_ID, JobStatus, JobSummary, QueueSummary
from pgqueue.registry import registry

PAGE_SIZE = 50
RETRY_RULE = "only a failed or cancelled job can be retried"
CANCEL_RULE = "only a pending or running job can be cancelled"
MAX_BODY_BYTES = 16 * 2**20  # an enqueue's body; payloads that big belong in a table
#: PostgreSQL's text cannot hold NUL: a filter or key with one is refused, not sent.
NO_NUL = r"^[^\x00]*$"

#: A queue name, checked by check_queue_name (a 422 that names the value) and described by the
#: same rule in the OpenAPI document, so clients generated from it send only names we accept.
QueueName = Annotated[
    str,
    AfterValidator(check_queue_name),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,63}$"}),
]


class EnqueueRequest(BaseModel):
    """``POST /api/jobs``: a registered job type and its fields, with optional settings."""

    model_config = ConfigDict(extra="forbid")

    job_type: str = Field(min_length=1, max_length=255)
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: QueueName | None = None
    priority: int | None = Field(default=None, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    # Bounded as Queue.enqueue bounds it, so that run_at (now() + delay) is a timestamp.
    delay: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DURATION.total_seconds(),
        allow_inf_nan=False,
        description="seconds before it may run (100 years at most)",
    )
    # Characters that fit UNIQUE_KEY_MAX_BYTES however they encode (up to 4 bytes each), so
    # the document promises only keys that enqueue accepts.
    unique_key: str | None = Field(
        default=None, min_length=1, max_length=UNIQUE_KEY_MAX_BYTES // 4, pattern=NO_NUL
    )


class Enqueued(BaseModel):
    id: int
    existing: bool = Field(description="true: a live job held unique_key; this is its id")


class JobPageResponse(BaseModel):
    jobs: list[JobSummary]
    next_before_id: int | None = Field(description="pass as before_id for the next page")
    next_before_finished_at: datetime | None = Field(
        description="for a finished status: pass as before_finished_at for the next page"
    )


class StatsResponse(BaseModel):
    queues: list[QueueSummary] = Field(
        description="live counts per queue; totals of finished jobs are in pgqueue.queue_stats"
    )


class Changed(BaseModel):
    id: int
    status: JobStatus


class ProblemDetail(BaseModel):
    """An error: what was wrong, and for 422 the fields at fault."""

    detail: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


def _in_utc(moment: datetime) -> datetime:
    """A bound in UTC: one without an offset is UTC (the pages say so; the driver would take it
    as the server's local time). One beyond year 1 or 9999 once in UTC (as
    0001-01-01T00:00+01:00 is) becomes the first or last moment Python holds, which bounds
    every job alike."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == datetime.min.year else datetime.max).replace(
            tzinfo=UTC
        )


class ListFilters(BaseModel):
    """The query string of a job list (``GET /api/jobs`` and the jobs page)."""

    model_config = ConfigDict(extra="ignore")

    # Checked here, so a bad name is a 422 that names it rather than a 500 from list_jobs.
    queue: QueueName | None = None
    status: JobStatus | None = None
    job_type: str | None = Field(default=None, pattern=NO_NUL)
    since: Annotated[datetime, AfterValidator(_in_utc)] | None = None
    until: Annotated[datetime, AfterValidator(_in_utc)] | None = None
    before_id: int | None = Field(default=None, ge=1, le=MAX_JOB_ID)
    before_finished_at: Annotated[datetime, AfterValidator(_in_utc)] | None = None
    limit: int = Field(default=PAGE_SIZE, ge=1, le=MAX_PAGE)

    @classmethod
    def from_query(cls, request: Request) -> ListFilters:
        """The filters given (blank fields are unset); ValidationError names a bad one."""
        return cls.model_validate({k: v for k, v in request.query_params.items() if v.strip()})

    async def page(self, queue: Queue) -> JobPageResponse:
        jobs = await queue.list_jobs(**self.model_dump())
        more = len(jobs) == self.limit
        last = jobs[-1] if more else None
        return JobPageResponse(
            jobs=jobs,
            next_before_id=None if last is None else last.id,
            next_before_finished_at=None if last is None else last.finished_at,
        )


def queue_of(request: Request) -> Queue:
    """The Queue the app was created with."""
    queue: Queue = request.app.state.queue
    return queue


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code, media_type="application/json")


def problem(status_code: int, detail: str, errors: list[dict[str, Any]] | None = None) -> Response:
    return _json(ProblemDetail(detail=detail, errors=errors or []), status_code)


def field_errors(error: ValidationError, *prefix: str | int) -> list[dict[str, Any]]:
    """Pydantic's errors without the input (a payload may hold secrets), located from the
    request body's root."""
    return [
        {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_context=False, include_input=False)
    ]


def job_id_of(request: Request) -> int:
    return int(request.path_params["job_id"])


async def stats(request: Request) -> Response:
    return _json(StatsResponse(queues=await queue_of(request).queue_summary()))


async def list_jobs(request: Request) -> Response:
    try:
        filters = ListFilters.from_query(request)
    except ValidationError as error:
        return problem(422, "invalid filter", field_errors(error, "query"))
    return _json(await filters.page(queue_of(request)))


async def get_job(request: Request) -> Response:
    try:
        record = await queue_of(request).get_job(job_id_of(request))
    except JobNotFound as error:
        return problem(404, str(error))
    return _json(record)


async def _body(request: Request) -> bytes | None:
    """The request's body, or None once it grows past MAX_BODY_BYTES."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def enqueue(request: Request) -> Response:
    raw = await _body(request)
    if raw is None:
        return problem(413, f"the body is over {MAX_BODY_BYTES // 2**20} MiB")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # (nested too deep)
        return problem(400, f"the body is not JSON: {error}")
    try:
        wanted = EnqueueRequest.model_validate(body)
    except ValidationError as error:
        return problem(422, "invalid request", field_errors(error, "body"))
    cls = registry.get(wanted.job_type)
    if cls is None:
        known = ", ".join(registry.names()) or "none (start the dashboard with --app)"
        error_entry = {"loc": ["body", "job_type"], "msg": f"unknown; known: {known}"}
        return problem(422, f"unknown job type {wanted.job_type!r}", [error_entry])
    try:
        job = cls.model_validate(wanted.payload)
    except ValidationError as error:
        return problem(
            422,
            f"payload does not validate as {wanted.job_type}",
            field_errors(error, "body", "payload"),
        )
    try:
        job_id = await queue_of(request).enqueue(
            job,
            queue=wanted.queue,
            priority=wanted.priority,
            delay=wanted.delay,
            unique_key=wanted.unique_key,
        )
    except InvalidJob as error:
        return problem(422, str(error))
    return _json(Enqueued(id=job_id, existing=job_id.existing), 200 if job_id.existing else 201)


async def retry(request: Request) -> Response:
    queue, job_id = queue_of(request), job_id_of(request)
    if await queue.retry(job_id):
        return _json(Changed(id=job_id, status=JobStatus.PENDING))
    return await _refused(queue, job_id, RETRY_RULE)


async def cancel(request: Request) -> Response:
    queue, job_id = queue_of(request), job_id_of(request)
    if await queue.cancel(job_id):
        return _json(Changed(id=job_id, status=JobStatus.CANCELLED))
    return await _refused(queue, job_id, CANCEL_RULE)


async def _refused(queue: Queue, job_id: int, rule: str) -> Response:
    try:
        status = await queue.get_job_status(job_id)
    except JobNotFound as error:
        return problem(404, str(error))
    return problem(409, f"job {job_id} is {status}: {rule}")


routes = [
    Route("/api/stats", stats, methods=["GET"]),
    Route("/api/jobs", list_jobs, methods=["GET"]),
    Route("/api/jobs", enqueue, methods=["POST"]),
    Route("/api/jobs/{job_id:int}", get_job, methods=["GET"]),
    Route("/api/jobs/{job_id:int}/retry", retry, methods=["POST"]),
    Route("/api/jobs/{job_id:int}/cancel", cancel, methods=["POST"]),
]
