"""``create_app(queue)``: the dashboard and its JSON API as one Starlette app."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import pass_context
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pgqueue.dashboard import api, pages
from pgqueue.dashboard.openapi import serve_document
from pgqueue.dashboard.security import Credentials, Guard
from pgqueue.queue import Queue
from pgqueue.records import EXACT_COUNT

_HERE = Path(__file__).parent


def create_app(
    queue: Queue,
    *,
    auth: str | None = None,
    token: str | None = None,
    read_only: bool = False,
    allowed_hosts: Iterable[str] | None = None,
) -> Starlette:
    """The dashboard over ``queue`` (which you connect and close), to run with any ASGI server
    or mount in your app: ``app.mount("/pgqueue", create_app(queue, auth="admin:secret"))``.

    ``auth`` ("user:password") and ``token`` require HTTP Basic or a Bearer token on every
    request; ``read_only`` refuses every action. ``allowed_hosts``: refuse a request whose Host
    header names neither a loopback address nor one of these (``pgqueue dashboard`` sets it when
    it runs without credentials, against DNS rebinding). Needs the ``dashboard`` extra.
    """
    credentials = Credentials.parse(auth, token)
    templates = Jinja2Templates(directory=_HERE / "templates")
    templates.env.filters["when"] = _when
    templates.env.filters["span"] = _span
    templates.env.filters["count"] = _count
    templates.env.globals["path_for"] = _path_for
    app = Starlette(
        routes=[
            *pages.routes,
            *api.routes,
            Route("/api/openapi.json", serve_document, methods=["GET"], name="openapi"),
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ],
        middleware=[
            Middleware(
                Guard,
                credentials=credentials,
                read_only=read_only,
                allowed_hosts=None if allowed_hosts is None else frozenset(allowed_hosts),
            )
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.queue = queue
    app.state.templates = templates
    app.state.read_only = read_only
    app.state.flash_key = secrets.token_bytes(32)  # signs the outcome shown after an action
    return app


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed) as the API's JSON problem
    under /api, and as a page elsewhere."""
    assert isinstance(error, HTTPException)
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    if path.startswith("/api/"):
        return api.problem(error.status_code, error.detail)
    if error.status_code == 404:
        return pages.not_found(request, "such page")
    return PlainTextResponse(error.detail, error.status_code, headers=error.headers)


@pass_context
def _path_for(context: Mapping[str, Any], name: str, /, **params: Any) -> str:
    """A route's path from the server's root (under the path the app is mounted on): links that
    hold behind a proxy, which absolute URLs built from the Host header would not."""
    request: Request = context["request"]
    return f"{request.scope.get('root_path', '')}{request.app.url_path_for(name, **params)}"


def _when(moment: datetime | None) -> str:
    """A timestamp as the pages show it: UTC to the second."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _count(jobs: int) -> str:
    """A count of waiting jobs, marked as the estimate it is above EXACT_COUNT."""
    return f"≈{jobs:,}" if jobs > EXACT_COUNT else str(jobs)


def _span(length: timedelta | float | None) -> str:
    """A duration for people: 850 ms, 12.3 s, 4 min 5 s, 3 h 20 min, 2 d 4 h."""
    if length is None:
        return ""
    seconds = length.total_seconds() if isinstance(length, timedelta) else length
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    if days:
        return f"{days} d {hour} h"
    return f"{hours} h {minute} min" if hours else f"{minutes} min {second} s"
