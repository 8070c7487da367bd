"""The dashboard in a real browser (Debian's chromium driven by Playwright) against a real
``pgqueue dashboard`` process: what an operator sees and clicks, checked against the database.
Full-page screenshots of each step go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator

import asyncpg
import pytest
from playwright.async_api import Browser, Dialog, Page, async_playwright, expect

from pgqueue import Queue
from tests.dashboard.conftest import DashboardProcess
from tests.e2e.conftest import REPO
from tests.factories import count, eventually, running
from tests.jobs import AlwaysFails, Echo

SCREENSHOTS = REPO / "test-artifacts" / "dashboard"

# Installing Chromium on a first run may take minutes (see chromium()).
pytestmark = pytest.mark.timeout(900)


def chromium() -> str:
    """Debian's chromium. Missing, it is installed as .ci/run does (as root, through apt), so
    that the README's test command needs nothing done by hand; Playwright never downloads one."""
    found = shutil.which("chromium")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("the browser tests need Chromium: install it (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = await asyncio.to_thread(chromium)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def snap(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


async def seed(queue: Queue, db: asyncpg.Connection) -> tuple[list[int], list[int]]:
    """Four jobs that really failed (a worker ran them), then jobs waiting in each way the
    overview counts: two pending, one scheduled for later, one blocked on a parent."""
    failed = [int(i) for i in await queue.enqueue_batch([AlwaysFails()] * 4, max_retries=0)]
    async with running(queue, queues=["tests"]):
        await eventually(lambda: count(db, "failed"), until=lambda n: n == 4)
    first = await queue.enqueue(Echo(text="one"))
    waiting = [
        first,
        await queue.enqueue(Echo(text="two")),
        await queue.enqueue(Echo(text="later"), delay=3600),
        await queue.enqueue(Echo(text="after one"), depends_on=[first]),
    ]
    return failed, [int(i) for i in waiting]


async def queue_counts(db: asyncpg.Connection, queue: str) -> list[str]:
    """The overview's numbers for ``queue``, counted from the jobs table itself."""
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'pending' AND NOT blocked AND run_at <= now()),"
        " count(*) FILTER (WHERE status = 'pending' AND NOT blocked AND run_at > now()),"
        " count(*) FILTER (WHERE status = 'pending' AND blocked),"
        " count(*) FILTER (WHERE status = 'running'),"
        " count(*) FILTER (WHERE status = 'failed')"
        " FROM pgqueue.jobs WHERE queue = $1",
        queue,
    )
    assert row is not None
    return [str(n) for n in row]


async def test_an_operator_finds_retries_and_cancels_failed_jobs(
    dashboard: DashboardProcess, queue: Queue, db: asyncpg.Connection, page: Page
) -> None:
    failed, _waiting = await seed(queue, db)
    dialogs: list[str] = []

    async def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)

    # The overview: the queue's row shows what the database holds.
    await page.goto(dashboard.url)
    row = page.locator('#queues tr[data-queue="tests"]')
    expected = await queue_counts(db, "tests")
    assert expected == ["2", "1", "1", "0", "4"]
    await expect(row.locator("td.num").nth(0)).to_have_text(expected[0])
    assert [t.strip() for t in await row.locator("td.num").all_inner_texts()][:5] == expected
    await snap(page, "01-overview")

    # Jobs, filtered by status with the form: only the failed ones are listed.
    await page.get_by_role("link", name="Jobs", exact=True).click()
    await page.locator("#filters select[name=status]").select_option("failed")
    await page.locator("#filters").get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"/jobs\?.*status=failed"))
    rows = page.locator("#jobs tbody tr")
    await expect(rows).to_have_count(4)
    assert {t.strip() for t in await rows.locator("td:nth-child(4)").all_inner_texts()} == {
        "failed"
    }
    listed = {int(t) for t in await rows.locator("td:nth-child(1)").all_inner_texts()}
    assert listed == set(failed)
    await snap(page, "02-jobs-failed")

    # A failed job: its error and traceback; Retry puts it back to pending.
    retried = failed[0]
    await rows.get_by_role("link", name=str(retried), exact=True).click()
    await expect(page.locator("h1")).to_contain_text(f"Job {retried}")
    await expect(page.locator("h1 .status")).to_have_text("failed")
    attempt = page.locator("details.attempt").first
    await expect(attempt.locator("summary")).to_contain_text("RuntimeError: attempt 1 fails")
    traceback = attempt.locator("pre.traceback")
    await expect(traceback).to_be_visible()
    await expect(traceback).to_contain_text("Traceback (most recent call last)")
    await expect(traceback).to_contain_text('raise RuntimeError(f"attempt')
    await snap(page, "03-failed-job")
    await page.get_by_role("button", name="Retry").click()
    await expect(page.locator(".flash")).to_have_text(f"job {retried} retried")
    await expect(page.locator("h1 .status")).to_have_text("pending")
    await snap(page, "04-job-retried")
    assert tuple(
        await db.fetchrow("SELECT status::text, attempts FROM pgqueue.jobs WHERE id = $1", retried)
    ) == ("pending", 0)

    # The dead letter queue: tick two, cancel them (after the confirm), one stays failed.
    await page.get_by_role("link", name="Dead letters").click()
    remaining = failed[1:]
    await expect(page.locator("#jobs tbody tr")).to_have_count(len(remaining))
    ticked, kept = remaining[:2], remaining[2:]
    for job_id in ticked:
        await page.get_by_label(f"select job {job_id}").check()
    await snap(page, "05-dead-letters-ticked")
    await page.get_by_role("button", name="Cancel ticked").click()
    await expect(page.locator(".flash")).to_have_text("2 of 2 jobs cancelled")
    await expect(page.locator("#jobs tbody tr")).to_have_count(len(kept))
    await snap(page, "06-dead-letters-cancelled")
    assert dialogs == ["Apply to the ticked jobs?"]
    statuses = dict(
        await db.fetch("SELECT id, status::text FROM pgqueue.jobs WHERE id = any($1)", failed)
    )
    assert statuses == {
        retried: "pending",
        **dict.fromkeys(ticked, "cancelled"),
        **dict.fromkeys(kept, "failed"),
    }


async def test_html_in_a_payload_or_a_message_is_shown_as_text(
    dashboard: DashboardProcess, queue: Queue, page: Page
) -> None:
    script = "<script>alert(1)</script>"
    job_id = await queue.enqueue(Echo(text=script))
    dialogs: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)

    await page.goto(f"{dashboard.url}/jobs/{job_id}")
    await expect(page.locator("#payload")).to_contain_text(f'"text": "{script}"')
    assert await page.locator("main script").count() == 0
    await snap(page, "11-escaped-payload")

    # The outcome shown after an action is signed: a crafted link shows nothing.
    image = "<img src=x onerror=alert(2)>"
    await page.goto(f"{dashboard.url}/?done={image}&sig=0")
    await expect(page.locator("h1")).to_have_text("Overview")
    assert await page.locator(".flash").count() == 0
    assert await page.locator("main img").count() == 0
    await snap(page, "12-unsigned-flash-ignored")

    # Every script on the pages is the dashboard's own file, and nothing ever alerted.
    sources = await page.locator("script").evaluate_all("scripts => scripts.map(s => s.src)")
    assert sources == [f"{dashboard.url}/static/dashboard.js"]
    assert dialogs == []
