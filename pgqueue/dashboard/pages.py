"""The dashboard's HTML pages and the form actions behind their buttons. Each page reads in
one or two queries (run concurrently where there are two); actions redirect back (POST, then
GET)."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from pgqueue.dashboard.api import ListFilters, field_errors, job_id_of, queue_of
from pgqueue.dashboard.charts import activity_by_queue
from pgqueue.errors import JobNotFound, PgQueueError
from pgqueue.records import JobStatus, QueueSummary

HOUR = 60


def _render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    context["read_only"] = request.app.state.read_only
    context["csrf_token"] = request.state.csrf_token
    done = request.query_params.get("done", "")
    given = request.query_params.get("sig", "").encode()  # as bytes: any text compares
    signed = hmac.compare_digest(given, _signature(request, done).encode())
    context["flash"] = done if done and signed else None
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def _action(request: Request, *allowed: str) -> str | None:
    action: str = request.path_params["action"]
    return action if action in allowed else None


def not_found(request: Request, what: str) -> Response:
    return _render(request, "missing.html", 404, what=what)


def _back(request: Request, path: str, message: str) -> Response:
    """Redirect after a POST, with the outcome shown on the next page. The message is signed,
    so that a crafted link cannot make the dashboard say something it did not do."""
    query = urlencode({"done": message, "sig": _signature(request, message)})
    return RedirectResponse(f"{request.scope.get('root_path', '')}{path}?{query}", 303)


def _signature(request: Request, message: str) -> str:
    key: bytes = request.app.state.flash_key
    return hmac.new(key, message.encode(), "sha256").hexdigest()


async def overview(request: Request) -> Response:
    queue = queue_of(request)
    queues, throughput, workers = await asyncio.gather(
        queue.queue_summary(), queue.throughput(HOUR), queue.workers()
    )
    activity = activity_by_queue(throughput, minutes=HOUR)
    # The summary lists queues with live work; those that only finished jobs lately join them.
    listed = {q.queue for q in queues}
    lately = [_idle_queue(name) for name in activity if name not in listed]
    return _render(
        request,
        "overview.html",
        queues=sorted([*queues, *lately], key=lambda q: q.queue),
        activity=activity,
        workers=workers,
    )


def _idle_queue(name: str) -> QueueSummary:
    return QueueSummary(
        queue=name,
        pending=0,
        scheduled=0,
        blocked=0,
        running=0,
        failed=0,
        oldest_pending_seconds=None,
        paused=False,
        concurrency_limit=None,
        rate_limit=None,
        rate_period=None,
    )


async def jobs(request: Request) -> Response:
    given = {k: v for k, v in request.query_params.items() if v.strip()}
    return await _job_list(request, "jobs.html", given, statuses=list(JobStatus))


async def _job_list(
    request: Request,
    template: str,
    query: dict[str, str],
    *,
    fixed: tuple[str, ...] = (),
    **context: Any,
) -> Response:
    """A page of a job list from its query; ``fixed`` filters stay out of the next page's link."""
    try:
        filters = ListFilters.model_validate(query)
    except ValidationError as error:
        problems = [f"{e['loc'][-1]}: {e['msg']}" for e in field_errors(error)]
        return _render(
            request, template, 422, filters=None, page=None, problems=problems, **context
        )
    page = await filters.page(queue_of(request))
    cursor = {"before_id", "before_finished_at"}
    shown = filters.model_dump(exclude_none=True, exclude={*fixed, *cursor}, mode="json")
    following = {**shown, "before_id": page.next_before_id}
    if page.next_before_finished_at is not None:
        following["before_finished_at"] = page.next_before_finished_at.isoformat()
    return _render(
        request,
        template,
        filters=filters,
        page=page,
        problems=[],
        first_url=None if filters.before_id is None else f"?{urlencode(shown)}",
        next_url=None if page.next_before_id is None else f"?{urlencode(following)}",
        **context,
    )


async def job(request: Request) -> Response:
    queue, job_id = queue_of(request), job_id_of(request)
    try:
        record, relations = await asyncio.gather(queue.get_job(job_id), queue.job_relations(job_id))
    except JobNotFound:
        return not_found(request, f"job {job_id}")
    return _render(
        request,
        "job.html",
        job=record,
        relations=relations,
        payload=json.dumps(record.payload, indent=2, ensure_ascii=False),
        result=None if record.result is None else json.dumps(record.result, indent=2),
    )


async def job_action(request: Request) -> Response:
    queue, job_id = queue_of(request), job_id_of(request)
    action = _action(request, "retry", "cancel")
    if action is None:
        return not_found(request, "this action")
    done = await (queue.retry(job_id) if action == "retry" else queue.cancel(job_id))
    verb = "retried" if action == "retry" else "cancelled"
    message = f"job {job_id} {verb}" if done else f"job {job_id} could not be {verb} now"
    return _back(request, f"/jobs/{job_id}", message)


async def failed(request: Request) -> Response:
    kept = ("queue", "job_type", "before_id", "before_finished_at")  # the status is fixed
    query = {k: v for k, v in request.query_params.items() if k in kept and v.strip()}
    return await _job_list(
        request, "failed.html", {**query, "status": "failed"}, fixed=("status", "limit")
    )


async def failed_action(request: Request) -> Response:
    """Retry or cancel the ticked failed jobs, or retry every failed job matching the filter."""
    queue, action = queue_of(request), _action(request, "retry", "cancel", "retry-all")
    if action is None:
        return not_found(request, "this action")
    form = await request.form()
    try:
        ids = [int(str(value)) for value in form.getlist("id")]
    except ValueError:
        return _back(request, "/failed", "job ids must be whole numbers")
    if action == "retry-all":
        queue_name, job_type = (str(form.get(k) or "") or None for k in ("queue", "job_type"))
        try:
            count = await queue.retry_failed(queue_name, job_type)
        except PgQueueError as error:  # a queue name no page offers: say so, not a 500
            return _back(request, "/failed", str(error))
        return _back(request, "/failed", f"{count} failed jobs retried")
    if not ids:
        return _back(request, "/failed", "no job was ticked")
    if action == "retry":
        retried = await queue.retry_failed(job_ids=ids)
        return _back(request, "/failed", f"{retried} of {len(ids)} jobs retried")
    cancelled = await queue.cancel_failed(ids)
    return _back(request, "/failed", f"{len(cancelled)} of {len(ids)} jobs cancelled")


async def schedules(request: Request) -> Response:
    return _render(request, "schedules.html", schedules=await queue_of(request).schedules())


async def schedule_action(request: Request) -> Response:
    queue = queue_of(request)
    return await _pause_or_resume(
        request, "schedule", "/schedules", queue.pause_schedule, queue.resume_schedule
    )


async def _pause_or_resume(
    request: Request,
    kind: str,
    page: str,
    pause: Callable[[str], Awaitable[None]],
    resume: Callable[[str], Awaitable[None]],
) -> Response:
    name, action = request.path_params["name"], _action(request, "pause", "resume")
    if action is None:
        return not_found(request, "this action")
    try:
        await (pause(name) if action == "pause" else resume(name))
    except PgQueueError as error:  # no such schedule; a name that cannot be a queue's
        return _back(request, page, str(error))
    return _back(request, page, f"{kind} {name} {action}d")


async def queues(request: Request) -> Response:
    return _render(request, "queues.html", queues=await queue_of(request).queue_summary())


async def queue_action(request: Request) -> Response:
    queue = queue_of(request)
    return await _pause_or_resume(
        request, "queue", "/queues", queue.pause_queue, queue.resume_queue
    )


routes = [
    Route("/", overview, methods=["GET"]),
    Route("/jobs", jobs, methods=["GET"]),
    Route("/jobs/{job_id:int}", job, methods=["GET"]),
    Route("/jobs/{job_id:int}/{action:str}", job_action, methods=["POST"]),
    Route("/failed", failed, methods=["GET"]),
    Route("/failed/{action:str}", failed_action, methods=["POST"]),
    Route("/schedules", schedules, methods=["GET"]),
    Route("/schedules/{name:str}/{action:str}", schedule_action, methods=["POST"]),
    Route("/queues", queues, methods=["GET"]),
    Route("/queues/{name:str}/{action:str}", queue_action, methods=["POST"]),
]
