"""The dashboard's guard over plain HTTP against real ``pgqueue dashboard`` processes: who gets
in (Basic, Bearer), which POSTs may change state (CSRF double submit, Origin, content type),
read-only mode, and the command's refusals. Outcomes are read from the database."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import asyncpg
import httpx
import pytest

from pgqueue import Queue
from pgqueue.dashboard import api, pages
from pgqueue.dashboard.security import CSRF_COOKIE, CSRF_FIELD
from tests.dashboard.conftest import DashboardProcess, dashboard_process
from tests.e2e.conftest import pgqueue_command
from tests.factories import status_of
from tests.jobs import Echo

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
UNREACHABLE_DSN = "postgresql://nobody@127.0.0.1:1/none"


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def failed_job(queue: Queue, db: asyncpg.Connection, text: str = "failed") -> int:
    """A job in the dead letter queue (set directly: these tests are about the guard)."""
    job_id = await queue.enqueue(Echo(text=text))
    await db.execute(
        "UPDATE pgqueue.jobs SET status = 'failed', attempts = 1, finished_at = now(),"
        " last_error = 'RuntimeError: boom' WHERE id = $1",
        job_id,
    )
    return job_id


async def jobs_table(db: asyncpg.Connection) -> list[tuple[int, str, int]]:
    rows = await db.fetch("SELECT id, status::text, attempts FROM pgqueue.jobs ORDER BY id")
    return [(r["id"], r["status"], r["attempts"]) for r in rows]


async def csrf_cookie(client: httpx.AsyncClient, url: str) -> str:
    """GET a page, as a browser would before it posts a form; the token its cookie holds."""
    response = await client.get(url)
    assert response.status_code == 200
    token = response.cookies[CSRF_COOKIE]
    assert f'name="{CSRF_FIELD}" value="{token}"' in response.text  # the forms carry it
    return token


# --- who gets in ----------------------------------------------------------------------------


async def test_basic_auth_admits_only_the_right_password_and_never_shows_it(
    dsn: str, tmp_path: Path
) -> None:
    async with (
        dashboard_process(dsn, tmp_path, args=("--auth", "admin:s3cret")) as dashboard,
        httpx.AsyncClient(base_url=dashboard.url) as client,
    ):
        anonymous = [await client.get(p) for p in ("/", "/api/stats", "/static/dashboard.css")]
        refused = {
            name: (await client.get("/", headers=headers)).status_code
            for name, headers in {
                "wrong password": basic("admin", "wrong"),
                "wrong user": basic("root", "s3cret"),
                "password as bearer": bearer("s3cret"),
                # A header byte that is not ASCII is refused like any bad password, not a 500.
                "not ascii": {"Authorization": b"Basic \xe9"},
            }.items()
        }
        admitted = [
            await client.get(path, headers=basic("admin", "s3cret"))
            for path in ("/", "/jobs", "/failed", "/queues", "/schedules", "/api/stats")
        ]

    assert [r.status_code for r in anonymous] == [401] * 3
    assert all(r.headers["WWW-Authenticate"].startswith('Basic realm="pgqueue"') for r in anonymous)
    assert refused == dict.fromkeys(refused, 401)
    assert [page.status_code for page in admitted] == [200] * 6
    assert not any("s3cret" in page.text for page in [*anonymous, *admitted])
    log = dashboard.log()
    assert "pgqueue dashboard on http://127.0.0.1" in log  # the log was written ...
    assert "s3cret" not in log  # ... without the password
    assert "Traceback" not in log


async def test_a_token_is_accepted_as_bearer_or_as_the_basic_password(
    dsn: str, tmp_path: Path
) -> None:
    tries = {
        "nothing": {},
        "bearer": bearer("tok123"),
        "wrong bearer": bearer("tok12"),
        "longer bearer": bearer("tok1234"),
        "token as basic password": basic("anyone", "tok123"),
        "wrong basic password": basic("anyone", "nope"),
    }
    async with (
        dashboard_process(dsn, tmp_path, env={"PGQUEUE_DASHBOARD_TOKEN": "tok123"}) as dashboard,
        httpx.AsyncClient(base_url=dashboard.url) as client,
    ):
        answers = {
            name: (await client.get("/", headers=headers)).status_code
            for name, headers in tries.items()
        }
        api = await client.get("/api/stats", headers=bearer("tok123"))

    assert answers == {
        "nothing": 401,
        "bearer": 200,
        "wrong bearer": 401,
        "longer bearer": 401,
        "token as basic password": 200,
        "wrong basic password": 401,
    }
    assert api.status_code == 200
    assert "tok123" not in dashboard.log()


# --- which POSTs may change state -----------------------------------------------------------


async def test_a_form_post_needs_the_csrf_token_of_its_cookie(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="keep me"))
    cancel = f"/jobs/{job_id}/cancel"
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        no_token = await client.post(cancel, content="", headers=FORM)
        assert no_token.status_code == 403
        assert "CSRF" in no_token.text
        assert await status_of(db, job_id) == "pending"

        mismatch = await client.post(
            cancel,
            content=f"{CSRF_FIELD}=not-the-cookie",
            headers={**FORM, "Cookie": f"{CSRF_COOKIE}=the-cookie"},
        )
        assert mismatch.status_code == 403
        token_without_cookie = await client.post(cancel, data={CSRF_FIELD: "the-cookie"})
        assert token_without_cookie.status_code == 403
        assert await status_of(db, job_id) == "pending"

        token = await csrf_cookie(client, f"/jobs/{job_id}")  # the client keeps the cookie
        done = await client.post(cancel, data={CSRF_FIELD: token})

    assert done.status_code == 303
    assert re.fullmatch(
        rf".*/jobs/{job_id}\?done=job\+{job_id}\+cancelled&sig=[0-9a-f]{{64}}",
        done.headers["location"],
    )
    assert await status_of(db, job_id) == "cancelled"


async def test_a_foreign_origin_or_another_content_type_changes_nothing(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="keep me"))
    failed_id = await failed_job(queue, db)
    before = await jobs_table(db)
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        token = await csrf_cookie(client, f"/jobs/{job_id}")
        refused = [
            # Everything right but the Origin: another site's page posting the form.
            await client.post(
                f"/jobs/{job_id}/cancel",
                data={CSRF_FIELD: token},
                headers={"Origin": "http://evil.example"},
            ),
            await client.post(
                f"/api/jobs/{failed_id}/retry",
                json={},
                headers={"Origin": "http://evil.example"},
            ),
            await client.post(
                f"/jobs/{job_id}/cancel",
                data={CSRF_FIELD: token},
                headers={"Origin": "http://127.0.0.1:1"},  # same host, other port
            ),
            # A cross-site form may send text/plain without a preflight.
            await client.post(
                f"/jobs/{job_id}/cancel",
                content=f"{CSRF_FIELD}={token}",
                headers={"Content-Type": "text/plain"},
            ),
            await client.post(
                f"/jobs/{job_id}/cancel",
                content=f"{CSRF_FIELD}={token}",
                headers={"Content-Type": "multipart/form-data; boundary=x"},
            ),
            await client.post(f"/api/jobs/{failed_id}/retry", content="{}"),  # no content type
        ]
        unchanged = await jobs_table(db)
        same_origin = await client.post(
            f"/jobs/{job_id}/cancel", data={CSRF_FIELD: token}, headers={"Origin": dashboard.url}
        )

    assert [r.status_code for r in refused] == [403] * len(refused)
    assert "cross-origin" in refused[0].text
    assert "Content-Type: application/json" in refused[3].text
    assert unchanged == before
    assert same_origin.status_code == 303  # the same token from the page's own origin works
    assert await status_of(db, job_id) == "cancelled"


async def test_the_json_api_needs_no_csrf_token(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection
) -> None:
    failed_id = await failed_job(queue, db)
    pending_id = await queue.enqueue(Echo(text="cancel me"))
    async with httpx.AsyncClient(base_url=dashboard.url) as client:  # no cookie, no token
        retried = await client.post(f"/api/jobs/{failed_id}/retry", json={})
        cancelled = await client.post(
            f"/api/jobs/{pending_id}/cancel",
            content=b"",
            headers={"Content-Type": "application/json; charset=utf-8"},
        )

    assert (retried.status_code, retried.json()) == (200, {"id": failed_id, "status": "pending"})
    assert cancelled.status_code == 200
    assert await jobs_table(db) == [(failed_id, "pending", 0), (pending_id, "cancelled", 0)]


# --- bad input -----------------------------------------------------------------------------


async def test_a_bad_queue_name_is_refused_by_name_never_a_server_error(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection
) -> None:
    failed_id = await failed_job(queue, db)
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        listed = {path: await client.get(path) for path in ("/jobs", "/failed", "/api/jobs")}
        shown = {path: await client.get(f"{path}?queue=a%20b") for path in listed}
        token = client.cookies[CSRF_COOKIE]
        retry_all = await client.post(
            "/failed/retry-all", data={CSRF_FIELD: token, "queue": "a b", "job_type": ""}
        )

    assert {path: r.status_code for path, r in listed.items()} == dict.fromkeys(listed, 200)
    assert {path: r.status_code for path, r in shown.items()} == dict.fromkeys(shown, 422)
    assert "queue name &#39;a b&#39; is invalid" in shown["/jobs"].text
    assert "queue name &#39;a b&#39; is invalid" in shown["/failed"].text
    assert shown["/api/jobs"].json()["errors"][0]["loc"] == ["query", "queue"]
    assert retry_all.status_code == 303
    assert "is+invalid" in retry_all.headers["location"]
    assert await status_of(db, failed_id) == "failed"
    assert "Traceback" not in dashboard.log()


# --- read-only ------------------------------------------------------------------------------


# Every POST route of the app, as a request; a test below checks none is missing.
def read_only_posts(job_id: int, failed_id: int) -> dict[str, tuple[str, bool]]:
    """Route path → (a URL of it, whether to post JSON rather than a form)."""
    return {
        "/jobs/{job_id:int}/{action:str}": (f"/jobs/{job_id}/cancel", False),
        "/failed/{action:str}": ("/failed/retry-all", False),
        "/schedules/{name:str}/{action:str}": ("/schedules/nightly/pause", False),
        "/queues/{name:str}/{action:str}": ("/queues/tests/pause", False),
        "/api/jobs": ("/api/jobs", True),
        "/api/jobs/{job_id:int}/retry": (f"/api/jobs/{failed_id}/retry", True),
        "/api/jobs/{job_id:int}/cancel": (f"/api/jobs/{job_id}/cancel", True),
    }


async def test_read_only_shows_no_actions_and_refuses_every_post(
    dsn: str, tmp_path: Path, queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="pending"))
    failed_id = await failed_job(queue, db)
    extra_posts = [
        (f"/jobs/{failed_id}/retry", False),
        ("/failed/retry", False),
        ("/failed/cancel", False),
        ("/queues/tests/resume", False),
    ]
    before = (await jobs_table(db), await db.fetch("SELECT * FROM pgqueue.queues"))
    async with (
        dashboard_process(dsn, tmp_path, args=("--read-only",)) as dashboard,
        httpx.AsyncClient(base_url=dashboard.url) as client,
    ):
        overview = await client.get("/")
        shown = {path: await client.get(path) for path in (f"/jobs/{failed_id}", f"/jobs/{job_id}")}
        shown["/failed"] = await client.get("/failed")
        cookie = overview.cookies[CSRF_COOKIE]
        posts = [*read_only_posts(job_id, failed_id).values(), *extra_posts]
        answers = {}
        for url, is_json in posts:
            if is_json:
                body = {"job_type": Echo.job_options.name, "payload": {"text": "x"}}
                answers[url] = await client.post(url, json=body)
            else:
                form = {CSRF_FIELD: cookie, "id": str(failed_id)}
                answers[url] = await client.post(url, data=form)

    assert "read-only" in overview.text
    for path, page in shown.items():
        assert page.status_code == 200, path
        assert '<form method="post"' not in page.text, path
        assert CSRF_FIELD not in page.text, path
    assert ">Retry<" not in shown[f"/jobs/{failed_id}"].text
    assert ">Cancel<" not in shown[f"/jobs/{job_id}"].text
    assert "Cancel ticked" not in shown["/failed"].text
    assert 'type="checkbox"' not in shown["/failed"].text
    assert f">{failed_id}</a>" in shown["/failed"].text  # the job is listed, without actions
    assert {url: r.status_code for url, r in answers.items()} == {url: 403 for url, _ in posts}
    assert all("read-only" in r.text for r in answers.values())
    assert (await jobs_table(db), await db.fetch("SELECT * FROM pgqueue.queues")) == before


def test_the_read_only_check_covers_every_post_route() -> None:
    posted = {
        route.path
        for route in [*pages.routes, *api.routes]
        if "POST" in (getattr(route, "methods", None) or ())
    }
    assert posted == set(read_only_posts(1, 2))


# --- the command's refusals -----------------------------------------------------------------


def test_refuses_a_public_host_without_credentials_before_binding() -> None:
    result = pgqueue_command("dashboard", "--host", "0.0.0.0", dsn=UNREACHABLE_DSN)

    assert result.returncode == 2
    assert "refusing to serve the dashboard on 0.0.0.0 without credentials" in result.stderr
    assert "--auth USER:PASSWORD" in result.stderr
    assert "PGQUEUE_DASHBOARD_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert "pgqueue dashboard on" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--auth", "admin:s3cret"), {}),
        ((), {"PGQUEUE_DASHBOARD_AUTH": "admin:s3cret"}),
        ((), {"PGQUEUE_DASHBOARD_TOKEN": "tok123"}),
    ],
    ids=["--auth", "auth-env", "token-env"],
)
def test_credentials_let_a_public_host_through_the_check(
    args: tuple[str, ...], env: dict[str, str]
) -> None:
    # An unreachable database stops it right after the check, before anything binds.
    result = pgqueue_command("dashboard", "--host", "0.0.0.0", *args, dsn=UNREACHABLE_DSN, env=env)

    assert result.returncode == 1
    assert "cannot reach the database at 127.0.0.1:1" in result.stderr
    assert "refusing" not in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


@pytest.mark.parametrize("auth", ["nocolon", "admin:", ":s3cret"])
def test_a_malformed_auth_is_a_usage_error(auth: str) -> None:
    result = pgqueue_command("dashboard", "--auth", auth, dsn=UNREACHABLE_DSN)

    assert result.returncode == 2
    assert "USER:PASSWORD, both non-empty" in result.stderr
    assert "Traceback" not in result.stderr


# --- DNS rebinding, framing, the cookie ------------------------------------------------------


async def test_without_credentials_only_a_loopback_host_is_served(
    dsn: str, tmp_path: Path, queue: Queue, db: asyncpg.Connection
) -> None:
    """A page on another site whose name resolves to 127.0.0.1 (DNS rebinding) names itself in
    Host and Origin alike: the Host check is what refuses it."""
    rebound = {"Host": "evil.example", "Origin": "http://evil.example"}
    enqueue = {"job_type": Echo.job_options.name, "payload": {"text": "x"}}
    allowing = ["--allowed-host", "dash.internal"]
    async with (
        dashboard_process(dsn, tmp_path, allowing) as dashboard,
        httpx.AsyncClient(base_url=dashboard.url) as client,
    ):
        assert (await client.get("/", headers={"Host": "evil.example"})).status_code == 400
        assert (await client.post("/api/jobs", json=enqueue, headers=rebound)).status_code == 400
        port = dashboard.url.rsplit(":", 1)[1]
        for host in ("localhost", "127.0.0.1", "[::1]", "dash.internal"):
            shown = await client.get("/", headers={"Host": f"{host}:{port}"})
            assert shown.status_code == 200, host
    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs") == 0
    async with (
        dashboard_process(dsn, tmp_path, ["--auth", "admin:s3cret"]) as dashboard,
        httpx.AsyncClient(base_url=dashboard.url) as client,
    ):
        named = {"Host": "dash.example.com", **basic("admin", "s3cret")}
        assert (await client.get("/", headers=named)).status_code == 200  # a proxy's name


async def test_pages_refuse_framing_and_the_csrf_cookie_is_strict(
    dashboard: DashboardProcess,
) -> None:
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        first = await client.get("/")
        again = await client.get("/jobs")
    for response in (first, again):
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
    attributes = [part.strip() for part in first.headers["set-cookie"].split(";")]
    assert attributes[1:] == ["Path=/", "SameSite=Strict", "HttpOnly"]
    assert "set-cookie" not in again.headers  # set once, then kept


async def test_an_outcome_message_with_a_forged_signature_is_ignored(
    dashboard: DashboardProcess,
) -> None:
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        for sig in ("0", "%C3%A9", "é" * 64):
            shown = await client.get(f"/?done=hacked&sig={sig}")
            assert shown.status_code == 200, sig
            assert "hacked" not in shown.text
