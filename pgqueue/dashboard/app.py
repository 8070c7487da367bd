"""``create_app(queue)``: the dashboard and its JSON API as one Starlette app."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pgqueue.dashboard import api, pages
from pgqueue.dashboard.security import Credentials, Guard
from pgqueue.queue import Queue

_HERE = Path(__file__).parent


def create_app(
    queue: Queue,
    *,
    auth: str | None = None,
    token: str | None = None,
    read_only: bool = False,
) -> Starlette:
    """The dashboard over ``queue`` (which you connect and close), to run with any ASGI server
    or mount in your app: ``app.mount("/pgqueue", create_app(queue, auth="admin:secret"))``.

    ``auth`` ("user:password") and ``token`` require HTTP Basic or a Bearer token on every
    request; ``read_only`` refuses every action. Needs the ``dashboard`` extra.
    """
    credentials = Credentials.parse(auth, token)
    templates = Jinja2Templates(directory=_HERE / "templates")
    templates.env.filters["when"] = _when
    templates.env.filters["span"] = _span
    app = Starlette(
        routes=[
            *pages.routes,
            *api.routes,
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ],
        middleware=[Middleware(Guard, credentials=credentials, read_only=read_only)],
        exception_handlers={HTTPException: api.http_error},
    )
    app.state.queue = queue
    app.state.templates = templates
    app.state.read_only = read_only
    app.state.flash_key = secrets.token_bytes(32)  # signs the outcome shown after an action
    return app


def _when(moment: datetime | None) -> str:
    """A timestamp as the pages show it: UTC to the second."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


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
