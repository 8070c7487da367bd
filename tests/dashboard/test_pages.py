"""The pages' own actions and reads, over HTTP against a real dashboard: pause and resume, the
overview's queues and chart, and what a page says of a job or action that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from pgqueue import Queue
from pgqueue.dashboard import create_app
from pgqueue.dashboard.security import CSRF_COOKIE
from pgqueue.records import EXACT_COUNT
from tests.dashboard.conftest import DashboardProcess, dashboard_process
from tests.dashboard.test_security import FORM
from tests.jobs import Echo
from tests.store import transitions


async def post_form(client: httpx.AsyncClient, url: str, page: str) -> httpx.Response:
    """A form POST as the page's button sends it; the message the next page shows."""
    assert (await client.get(page)).status_code == 200  # sets the CSRF cookie, once
    token = client.cookies[CSRF_COOKIE]
    response = await client.post(url, content=f"csrf_token={token}", headers=FORM)
    assert response.status_code == 303, response.text
    return await client.get(response.headers["location"])


def flash(page: httpx.Response) -> str | None:
    found = re.search(r'<p class="flash" role="status">(.*?)</p>', page.text)
    return None if found is None else found.group(1)


async def test_queues_pause_and_resume_from_their_page(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue(Echo(text="x"), queue="emails")
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        shown = await post_form(client, "/queues/emails/pause", "/queues")
        assert flash(shown) == "queue emails paused"
        assert await db.fetchval("SELECT paused FROM pgqueue.queues WHERE name = 'emails'")
        assert "/queues/emails/resume" in shown.text  # the button now resumes
        shown = await post_form(client, "/queues/emails/resume", "/queues")
        assert flash(shown) == "queue emails resumed"
        assert not await db.fetchval("SELECT paused FROM pgqueue.queues WHERE name = 'emails'")
        refused = await post_form(client, "/queues/no%20such/pause", "/queues")
        assert "queue name" in (flash(refused) or "")
        assert await db.fetchval("SELECT count(*) FROM pgqueue.queues") == 1


async def test_schedules_pause_and_resume_from_their_page(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.add_schedule("nightly", "0 3 * * *", Echo(text="x"))
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        shown = await post_form(client, "/schedules/nightly/pause", "/schedules")
        assert flash(shown) == "schedule nightly paused"
        assert await db.fetchval("SELECT paused FROM pgqueue.schedules WHERE name = 'nightly'")
        assert "/schedules/nightly/resume" in shown.text
        shown = await post_form(client, "/schedules/nightly/resume", "/schedules")
        assert flash(shown) == "schedule nightly resumed"
        assert not await db.fetchval("SELECT paused FROM pgqueue.schedules WHERE name = 'nightly'")
        missing = await post_form(client, "/schedules/absent/pause", "/schedules")
        assert "absent" in (flash(missing) or "")


async def test_unknown_jobs_and_actions_are_404_and_change_nothing(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="x"))
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        assert (await client.get("/jobs/999999")).status_code == 404
        assert (await client.get(f"/jobs/{2**64}")).status_code == 404
        await client.get("/")
        token = client.cookies[CSRF_COOKIE]
        for url in (f"/jobs/{job_id}/explode", "/queues/default/drop", "/failed/delete"):
            response = await client.post(url, content=f"csrf_token={token}", headers=FORM)
            assert response.status_code == 404, url
    assert await db.fetchval("SELECT status::text FROM pgqueue.jobs") == "pending"
    assert await db.fetchval("SELECT count(*) FROM pgqueue.queues") == 0


async def test_the_overview_lists_a_queue_that_only_finished_jobs_lately(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection
) -> None:
    """A queue with nothing left to do still shows, with its hour of work in the chart."""
    done = await queue.enqueue(Echo(text="x"), queue="reports")
    await transitions.complete(db, done, await transitions.start(db, done))
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        overview = await client.get("/")
    row = re.search(r'<tr data-queue="reports">(.*?)</tr>', overview.text, re.DOTALL)
    assert row is not None
    assert "1 completed, 0 failed in the last hour" in row.group(1)


async def test_mounted_in_another_app_every_link_cookie_and_redirect_stays_under_its_path(
    queue: Queue, db: asyncpg.Connection
) -> None:
    """create_app(queue) in an application's own Starlette app, as docs/guides/dashboard.md
    shows."""
    await queue.enqueue(Echo(text="x"), queue="emails")
    host = Starlette(routes=[Mount("/ops/pgqueue", create_app(queue))])
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        overview = await client.get("/ops/pgqueue/")
        assert overview.status_code == 200
        assert "Path=/ops/pgqueue" in overview.headers["set-cookie"]
        assert 'href="/ops/pgqueue/jobs"' in overview.text  # from the root: proxies keep them
        assert 'href="/ops/pgqueue/static/dashboard.css"' in overview.text
        assert (await client.get("/ops/pgqueue/static/dashboard.css")).status_code == 200
        shown = await post_form(client, "/ops/pgqueue/queues/emails/pause", "/ops/pgqueue/queues")
        assert str(shown.url).startswith("http://app/ops/pgqueue/queues?done=")
        assert flash(shown) == "queue emails paused"
        document = (await client.get("/ops/pgqueue/api/openapi.json")).json()
        assert document["servers"] == [{"url": "/ops/pgqueue"}]
    assert await db.fetchval("SELECT paused FROM pgqueue.queues WHERE name = 'emails'")


async def test_refusals_under_api_are_json_and_elsewhere_a_page(
    dashboard: DashboardProcess, db: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        for url in ("/api/jobs/-5", "/api/nothing"):
            missing = await client.get(url)
            assert (missing.status_code, missing.headers["content-type"]) == (
                404,
                "application/json",
            ), url
            assert missing.json()["detail"] == "Not Found"
        wrong_method = await client.put("/api/jobs/1", json={})
        assert wrong_method.status_code == 405
        assert wrong_method.json()["detail"] == "Method Not Allowed"
        page = await client.get("/nothing/here")
        assert page.status_code == 404
        assert "There is no such page." in page.text
        huge = '{"job_type": "tests.jobs.Echo", "payload": {"text": "' + "x" * 2**24 + '"}}'
        too_big = await client.post(
            "/api/jobs", content=huge, headers={"Content-Type": "application/json"}
        )
        assert too_big.status_code == 413
        assert "16 MiB" in too_big.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs") == 0


async def test_the_jobs_page_links_older_and_back_to_the_newest_keeping_its_filters(
    dashboard: DashboardProcess, queue: Queue
) -> None:
    ids = [await queue.enqueue(Echo(text=str(n)), queue="emails") for n in range(5)]
    await queue.enqueue(Echo(text="elsewhere"), queue="other")
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        first = await client.get("/jobs", params={"queue": "emails", "limit": 2})
        assert listed_ids(first) == [ids[4], ids[3]]
        assert 'rel="first"' not in first.text
        second = await client.get(f"/jobs{link(first, 'next')}")
        assert listed_ids(second) == [ids[2], ids[1]]
        third = await client.get(f"/jobs{link(second, 'next')}")
        assert listed_ids(third) == [ids[0]]
        assert 'rel="next"' not in third.text
        back = await client.get(f"/jobs{link(third, 'first')}")
        assert listed_ids(back) == [ids[4], ids[3]]


def listed_ids(page: httpx.Response) -> list[int]:
    return [int(i) for i in re.findall(r'<td><a href="[^"]*/jobs/(\d+)">', page.text)]


def link(page: httpx.Response, rel: str) -> str:
    found = re.search(rf'<a href="([^"]*)" rel="{rel}">', page.text)
    assert found is not None, rel
    return found.group(1).replace("&amp;", "&")


async def test_names_with_a_nul_are_refused_in_a_message_never_a_server_error(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.add_schedule("nightly", "0 3 * * *", Echo(text="x"))
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        missing = await post_form(client, "/schedules/a%00b/pause", "/schedules")
        assert "no schedule named" in (flash(missing) or "")
        await client.get("/failed")
        token = client.cookies[CSRF_COOKIE]
        retried = await client.post(
            "/failed/retry-all", content=f"csrf_token={token}&job_type=a%00b", headers=FORM
        )
        assert retried.status_code == 303
        assert "NUL" in (flash(await client.get(retried.headers["location"])) or "")
    assert not await db.fetchval("SELECT paused FROM pgqueue.schedules WHERE name = 'nightly'")


async def test_retry_ticked_leaves_a_job_cancelled_meanwhile_cancelled(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection
) -> None:
    """The page was loaded while both were failed; another operator then cancelled one."""
    failed = await queue.enqueue(Echo(text="a"), queue="a")
    cancelled = await queue.enqueue(Echo(text="b"), queue="b")  # claimed alone in its queue
    for job_id in (failed, cancelled):
        await transitions.fail(db, job_id, await transitions.start(db, job_id))
    await queue.cancel_failed([cancelled])
    async with httpx.AsyncClient(base_url=dashboard.url) as client:
        await client.get("/failed")
        token = client.cookies[CSRF_COOKIE]
        body = f"csrf_token={token}&id={failed}&id={cancelled}"
        response = await client.post("/failed/retry", content=body, headers=FORM)
        assert flash(await client.get(response.headers["location"])) == "1 of 2 jobs retried"
    statuses = await db.fetch("SELECT id, status::text FROM pgqueue.jobs ORDER BY id")
    assert [tuple(row) for row in statuses] == [(failed, "pending"), (cancelled, "cancelled")]


async def test_times_without_an_offset_are_utc_and_a_page_of_finished_jobs_holds(
    dsn: str, tmp_path: Path, queue: Queue, db: asyncpg.Connection
) -> None:
    """The API's list: naive times are UTC (the pages say so), whatever the server's zone; a
    finished list's next page carries the last job's finished_at, so it survives a retry."""
    ids = await queue.enqueue_batch([Echo(text=str(n)) for n in range(3)])
    await db.execute(
        "UPDATE pgqueue.jobs SET status = 'failed', created_at = '2026-01-01 12:00+00',"
        " finished_at = '2026-01-01 12:00+00'::timestamptz + id * interval '1 minute'"
    )
    new_york = {"TZ": "America/New_York"}  # a server zone five hours off UTC
    async with (
        dashboard_process(dsn, tmp_path, env=new_york) as dashboard,
        httpx.AsyncClient(base_url=dashboard.url) as client,
    ):
        at_noon = await client.get("/api/jobs", params={"since": "2026-01-01T12:00:00"})
        assert [job["id"] for job in at_noon.json()["jobs"]] == ids[::-1]
        after = await client.get("/api/jobs", params={"since": "2026-01-01T12:00:01"})
        assert after.json()["jobs"] == []
        far = await client.get("/api/jobs", params={"since": "9999-12-31T23:59:59"})
        assert (far.status_code, far.json()["jobs"]) == (200, [])

        first = (await client.get("/api/jobs", params={"status": "failed", "limit": 1})).json()
        assert [job["id"] for job in first["jobs"]] == [ids[2]]
        assert await queue.retry(ids[2])
        cursor = {k: first[f"next_{k}"] for k in ("before_id", "before_finished_at")}
        following = await client.get("/api/jobs", params={"status": "failed", **cursor})
        assert [job["id"] for job in following.json()["jobs"]] == [ids[1], ids[0]]


async def test_the_overview_marks_a_count_past_the_exact_bound_as_an_estimate(
    queue: Queue, db: asyncpg.Connection
) -> None:
    """Past EXACT_COUNT a queue's waiting jobs are the planner's estimate, shown with ≈; the
    counts under it are shown as they are."""
    await db.execute(
        "INSERT INTO pgqueue.jobs (queue, job_type, run_at)"
        " SELECT 'bulk', 'tests.Echo', now() + interval '1 day' FROM generate_series(1, $1)",
        EXACT_COUNT + 500,
    )
    await db.execute("ANALYZE pgqueue.jobs")
    await queue.enqueue(Echo(text="due"), queue="bulk")
    transport = httpx.ASGITransport(app=create_app(queue))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        overview = await client.get("/")
    row = re.search(r'<tr data-queue="bulk">(.*?)</tr>', overview.text, re.DOTALL)
    assert row is not None
    pending, scheduled = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))[:2]
    assert pending == "1"
    assert scheduled.startswith("≈")
    assert int(scheduled[1:].replace(",", "")) > EXACT_COUNT
