"""``pgqueue bench`` at a small N: that it runs, checks what it measures and cleans up (the
figures themselves are for benchmarks, never for tests)."""

from __future__ import annotations

import json

import asyncpg

from tests.e2e.conftest import pgqueue_command


async def bench_databases(server_dsn: str) -> list[str]:
    connection = await asyncpg.connect(server_dsn)
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pgqueue\\_bench\\_%'"
        )
    finally:
        await connection.close()
    return [row["datname"] for row in rows]


async def test_bench_runs_every_workload_on_a_database_of_its_own(server_dsn: str) -> None:
    before = await bench_databases(server_dsn)

    result = pgqueue_command(
        "bench",
        "--jobs",
        "300",
        "--enqueue-jobs",
        "200",
        "--latency-samples",
        "5",
        "--json",
        dsn=server_dsn,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_workload = {entry["workload"]: entry for entry in report["results"]}
    assert list(by_workload) == [
        "single_enqueue",
        "batch_enqueue",
        "process_1_worker",
        "process_2_workers",
        "latency",
    ]
    assert all(entry["value"] > 0 for entry in report["results"])
    assert by_workload["single_enqueue"]["details"]["jobs"] == 200
    assert by_workload["process_2_workers"]["details"]["jobs"] == 300
    assert by_workload["process_2_workers"]["details"]["worker_processes"] == 2
    assert by_workload["process_1_worker"]["details"]["peak_rss_mib"] > 0
    assert by_workload["latency"]["details"]["samples"] == 5
    assert report["machine"]["postgresql"]
    assert await bench_databases(server_dsn) == before  # every database it made is gone
