"""Run the real ``pgqueue`` command in subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def pgqueue_command(
    *args: str, dsn: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``pgqueue ARGS`` to completion (``env`` added to the environment); output as text."""
    return subprocess.run(
        [sys.executable, "-m", "pgqueue", *args],
        cwd=REPO,
        env={**environment(dsn), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def environment(dsn: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PGQUEUE_DSN", "DATABASE_URL"}}
    env["PYTHONPATH"] = str(REPO)
    if dsn is not None:
        env["PGQUEUE_DSN"] = dsn
    return env


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class WorkerProcesses:
    """``pgqueue work`` processes on the test database, each logging to its own file."""

    def __init__(self, dsn: str, logs: Path) -> None:
        self._dsn = dsn
        self._logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self._logs / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "work", "--app", "tests.jobs", *args],
            cwd=REPO,
            env=environment(self._dsn),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append(process)
        return process

    async def wait(self, process: subprocess.Popen[bytes], within: float = 30) -> int:
        return await asyncio.to_thread(process.wait, within)

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        return (self._logs / f"worker-{self.processes.index(process)}.log").read_text()

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def workers(dsn: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    processes = WorkerProcesses(dsn, tmp_path)
    yield processes
    processes.kill_all()
