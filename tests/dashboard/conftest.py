"""The dashboard as users run it: a real ``pgqueue dashboard`` process on the test database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import REPO, environment, stop
from tests.factories import eventually, free_ports


class DashboardProcess:
    """One ``pgqueue dashboard --app tests.jobs`` process; ``url`` is where it answers."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self._log = log

    def log(self) -> str:
        return self._log.read_text()


def _start(
    args: list[str], dsn: str, log: Path, env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "dashboard", *args],
            cwd=REPO,
            env={**environment(dsn), **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@asynccontextmanager
async def dashboard_process(
    dsn: str, logs: Path, args: Sequence[str] = (), env: dict[str, str] | None = None
) -> AsyncIterator[DashboardProcess]:
    """Start the dashboard and wait (with a deadline) until it answers; stop it on exit."""
    port = free_ports()
    log = logs / f"dashboard-{port}.log"
    process = _start(["--app", "tests.jobs", "--port", str(port), *args], dsn, log, env)
    dashboard = DashboardProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        async with httpx.AsyncClient() as client:

            async def answers() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"the dashboard exited:\n{dashboard.log()}")
                try:
                    await client.get(f"{dashboard.url}/static/dashboard.css")
                except httpx.TransportError:
                    return False
                return True

            await eventually(answers, until=bool, within=30)
        yield dashboard
    finally:
        stop(process)


@pytest.fixture
async def dashboard(dsn: str, tmp_path: Path) -> AsyncIterator[DashboardProcess]:
    """The dashboard with the defaults: loopback, no credentials, not read-only."""
    async with dashboard_process(dsn, tmp_path) as running:
        yield running
