"""Who may use the dashboard, and which requests may change state.

- **Credentials.** ``--auth user:password`` (HTTP Basic) and/or a token (``Authorization:
  Bearer``, or Basic with the token as password, for browsers). Compared in constant time;
  never logged or shown.
- **State changes** are POSTs only. A browser form must carry the CSRF token of its cookie
  (double submit); a JSON request needs no token, because a cross-site page cannot send
  ``Content-Type: application/json`` without a CORS preflight, which this app never grants.
  A POST whose ``Origin`` names another host is refused either way.
- **Read-only** dashboards refuse every POST.
- **Host.** Given ``allowed_hosts``, a request whose Host header names neither a loopback
  address nor one of them is refused: a dashboard without credentials on 127.0.0.1 cannot be
  reached through DNS rebinding. No page may be framed by another site.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSRF_COOKIE = "pgqueue_csrf"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_FORM_BYTES = 1 << 20
# No other site may frame the pages (clickjacking): old browsers read the first, others both.
_FRAMING_REFUSED = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
]


@dataclass(frozen=True)
class Credentials:
    """What a request must present: a user and password, a token, or either."""

    username: str | None = None
    password: str | None = None
    token: str | None = None

    @classmethod
    def parse(cls, auth: str | None, token: str | None) -> Credentials | None:
        """From ``user:password`` and a token; None when neither is given."""
        if token is not None and not token:
            raise ValueError("the dashboard token is empty")
        if auth is None:
            return None if token is None else cls(token=token)
        username, colon, password = auth.partition(":")
        if not colon or not username or not password:
            raise ValueError("expected USER:PASSWORD, both non-empty")
        return cls(username=username, password=password, token=token)

    def admit(self, authorization: str | None) -> bool:
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() == "bearer":
            return self.token is not None and _same(value.strip(), self.token)
        if scheme.lower() != "basic":
            return False
        try:
            username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8
            return False
        if self.token is not None and _same(password, self.token):
            return True
        return (
            self.username is not None
            and self.password is not None
            and _same(username, self.username) & _same(password, self.password)
        )


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` exposes the dashboard to this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: authentication, then the rules for state-changing requests. Puts the
    request's CSRF token in ``request.state.csrf_token`` for the templates' forms."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        credentials: Credentials | None,
        read_only: bool,
        allowed_hosts: frozenset[str] | None,
    ) -> None:
        self.app = app
        self.credentials = credentials
        self.read_only = read_only
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.allowed_hosts is not None and not _host_allowed(request, self.allowed_hosts):
            await PlainTextResponse("this Host is not allowed", 400)(scope, receive, send)
            return
        if self.credentials is not None and not self.credentials.admit(
            request.headers.get("authorization")
        ):
            await _unauthorized()(scope, receive, send)
            return
        cookie = request.cookies.get(CSRF_COOKIE, "")
        token = cookie or secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = token
        if request.method not in _SAFE_METHODS:
            refusal, receive = await self._check_change(request, receive, cookie)
            if refusal is not None:
                await refusal(scope, receive, send)
                return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += _FRAMING_REFUSED
                if not cookie:
                    headers.append((b"set-cookie", _csrf_cookie(scope, token)))
            await send(message)

        await self.app(scope, receive, send_guarded)

    async def _check_change(
        self, request: Request, receive: Receive, cookie: str
    ) -> tuple[Response | None, Receive]:
        if self.read_only:
            return _forbidden("this dashboard is read-only"), receive
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            return _forbidden("cross-origin request refused"), receive
        content_type = _media_type(request.headers)
        if content_type == "application/json":
            return None, receive
        if content_type != "application/x-www-form-urlencoded":
            return _forbidden(
                "a state-changing request must be a form with its CSRF token, or JSON "
                "(Content-Type: application/json)"
            ), receive
        body = await _read_body(receive)
        if body is None:
            return PlainTextResponse("form too large", status_code=413), receive
        submitted = parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [""])[0]
        if not cookie or not _same(submitted, cookie):
            return _forbidden("CSRF token missing or wrong: reload the page and try again"), receive
        return None, _replay(body)


def _host_allowed(request: Request, allowed: frozenset[str]) -> bool:
    """Whether the Host header names this machine's loopback, or a host allowed by name. Without
    it, a page on any site could reach a dashboard on 127.0.0.1 through DNS rebinding: its own
    name, made to resolve to 127.0.0.1, would be the Host and the Origin of its requests."""
    host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
    return is_loopback(host) or host in allowed


def _csrf_cookie(scope: Scope, token: str) -> bytes:
    path = scope.get("root_path") or "/"
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    return f"{CSRF_COOKIE}={token}; Path={path}; SameSite=Strict; HttpOnly{secure}".encode()


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _unauthorized() -> Response:
    return PlainTextResponse(
        "authentication required",
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="pgqueue", charset="UTF-8"'},
    )


def _forbidden(reason: str) -> Response:
    return PlainTextResponse(reason, status_code=403)
