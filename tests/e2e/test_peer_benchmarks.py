"""``python -m benchmarks`` (the peer comparison) at a small N, with the two systems that need
nothing beyond the dev extra: that it measures every workload, writes its JSON and drops every
database it made. The figures themselves are for benchmarks, never for tests."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.conftest import REPO, environment

WORKLOADS = ["single_enqueue", "batch_enqueue", "process_1_worker", "process_2_workers", "latency"]
SYSTEMS = ["raw", "pgqueue"]


async def run_benchmarks(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks",
        *args,
        cwd=REPO,
        env=environment(None),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 240)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def only_report(directory: Path) -> dict[str, Any]:
    (result_file,) = directory.glob("*.json")
    report: dict[str, Any] = json.loads(result_file.read_text())
    return report


async def existing_databases(server_dsn: str, names: list[str]) -> list[str]:
    connection = await asyncpg.connect(server_dsn)
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])", names
        )
    finally:
        await connection.close()
    return [row["datname"] for row in rows]


@pytest.mark.timeout(300)
async def test_peer_benchmarks_measure_every_workload_and_drop_their_databases(
    server_dsn: str, tmp_path: Path
) -> None:
    code, stdout, stderr = await run_benchmarks(
        "--jobs",
        "200",
        "--reps",
        "1",
        "--systems",
        ",".join(SYSTEMS),
        "--workloads",
        ",".join(WORKLOADS),
        "--latency-samples",
        "20",
        "--dsn",
        server_dsn,
        "--out",
        str(tmp_path),
    )

    assert code == 0, stdout + stderr
    report = only_report(tmp_path)
    runs = {(run["system"], run["workload"]): run for run in report["runs"]}
    assert sorted(runs) == sorted((system, work) for system in SYSTEMS for work in WORKLOADS)
    for run in runs.values():
        assert "error" not in run, run
        assert run["value"] > 0, run
    assert runs[("raw", "process_2_workers")]["details"]["jobs"] == 200
    assert runs[("pgqueue", "process_1_worker")]["details"]["peak_rss_mib"] > 0
    assert runs[("raw", "latency")]["details"]["samples"] == 20
    assert report["machine"]["postgresql"]["version"]
    assert report["systems"]["pgqueue"]["configuration"]
    assert "| pgqueue" in stdout  # the table
    databases = [run["database"] for run in report["runs"]]
    assert len(set(databases)) == len(runs)  # a fresh database for every run
    assert await existing_databases(server_dsn, databases) == []  # and every one dropped
