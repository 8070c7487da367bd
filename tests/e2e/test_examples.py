"""The examples run as a user runs them: examples/fastapi_app under uvicorn and its jobs under
``pgqueue work``, each a subprocess on the test's own migrated database."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.e2e.conftest import REPO, environment, stop
from tests.factories import eventually

APP = "examples.fastapi_app.app:app"
JOBS = "examples.fastapi_app.jobs"
FINISHED = {"completed", "failed", "cancelled"}


@contextlib.contextmanager
def started(command: list[str], dsn: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m COMMAND`` from the repository, output to ``log``; SIGTERM on exit (a
    graceful stop), SIGKILL if it has not stopped 10 s later."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=REPO,
            env=environment(dsn),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        stop(process)


def output(log: Path) -> str:
    """What a process started by ``started()`` has written so far."""
    return log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def example_app(dsn: str, logs: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The FastAPI example under uvicorn, and a client once it answers. It listens on a Unix
    socket in a short directory of its own (sun_path holds ~100 bytes): no port to race for."""
    directory = Path(tempfile.mkdtemp(prefix="pgq-"))
    socket = directory / "app.sock"
    log = logs / "uvicorn.log"
    try:
        with started(["uvicorn", APP, "--uds", str(socket)], dsn, log) as server:
            transport = httpx.AsyncHTTPTransport(uds=str(socket))
            async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
                await _wait_until_it_answers(client, server, log)
                yield client
        # uvicorn re-raises the SIGTERM once it has shut down, so its exit code says nothing.
        assert "Application shutdown complete." in output(log), output(log)
        assert "Traceback" not in output(log), output(log)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _wait_until_it_answers(
    client: httpx.AsyncClient, server: subprocess.Popen[bytes], log: Path
) -> None:
    async def probe() -> int | str | None:
        if server.poll() is not None:
            return "exited"
        try:
            # uvicorn serves once the lifespan has run: the pool is open, the table exists.
            return (await client.get("/openapi.json")).status_code
        except httpx.TransportError:
            return None  # not listening yet

    answer: int | str | None = await eventually(probe, until=lambda got: got is not None, within=15)
    assert answer == 200, f"the example app did not start ({answer}):\n{output(log)}"


async def _signups_and_jobs(db: asyncpg.Connection) -> tuple[list[Any], list[Any]]:
    """Every signup row and every job row, as tuples (the payload as JSON values)."""
    signups = await db.fetch("SELECT id, email, welcome_job_id FROM signups ORDER BY id")
    jobs = await db.fetch(
        "SELECT id, job_type, queue, status::text, payload FROM pgqueue.jobs ORDER BY id"
    )
    return [tuple(row) for row in signups], [(*row[:4], json.loads(row[4])) for row in jobs]


async def test_a_signup_commits_with_its_job_and_a_duplicate_leaves_neither(
    dsn: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    async with example_app(dsn, tmp_path) as client:
        created = await client.post("/signups", json={"email": "ada@example.com"})
        assert created.status_code == 201, created.text
        signup_id, job_id = created.json()["signup_id"], created.json()["job_id"]
        signups, jobs = await _signups_and_jobs(db)
        assert signups == [(signup_id, "ada@example.com", job_id)]
        payload = {"email": "ada@example.com"}
        assert jobs == [(job_id, "send_welcome_email", "emails", "pending", payload)]

        duplicate = await client.post("/signups", json={"email": "ada@example.com"})

        assert duplicate.status_code == 409, duplicate.text
        assert duplicate.json() == {"detail": "ada@example.com already signed up"}
        assert await _signups_and_jobs(db) == (signups, jobs)
        # The rolled-back enqueue did insert a job (it took the next id) before the duplicate
        # row failed; the rollback took that job with it.
        last_job_id = await db.fetchval(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence('pgqueue.jobs', 'id'))"
        )
        assert last_job_id == job_id + 1


async def test_the_app_reports_the_job_a_worker_completed(
    dsn: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    async with example_app(dsn, tmp_path) as client:
        created = await client.post("/signups", json={"email": "grace@example.com"})
        job_id = created.json()["job_id"]
        pending = await client.get(f"/jobs/{job_id}")
        assert pending.json() == {
            "id": job_id,
            "status": "pending",
            "attempts": 0,
            "result": None,
            "last_error": None,
        }

        worker_log = tmp_path / "worker.log"
        with started(["pgqueue", "work", "--app", JOBS], dsn, worker_log) as worker:
            finished: httpx.Response = await eventually(
                lambda: client.get(f"/jobs/{job_id}"),
                until=lambda response: response.json()["status"] in FINISHED,
            )
        assert worker.returncode == 0, output(worker_log)  # stopped gracefully by SIGTERM

        assert finished.json() == {
            "id": job_id,
            "status": "completed",
            "attempts": 1,
            "result": "welcome email sent to grace@example.com",
            "last_error": None,
        }
        row = await db.fetchrow(
            "SELECT status::text, result FROM pgqueue.jobs WHERE id = $1", job_id
        )
        assert row is not None
        assert (row["status"], json.loads(row["result"])) == (
            "completed",
            "welcome email sent to grace@example.com",
        )
        missing = await client.get("/jobs/999999")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "no job 999999"}
