"""``pgqueue bench`` at a small N: that it runs, checks what it measures and cleans up (the
figures themselves are for benchmarks, never for tests)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from pgqueue.store import BenchStore
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


async def run_bench(server_dsn: str, *options: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``pgqueue bench --json`` with ``options``: its report, and its results by workload,
    every one positive; checks that every database it made is gone."""
    before = await bench_databases(server_dsn)
    result = pgqueue_command("bench", *options, "--json", dsn=server_dsn)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert all(entry["value"] > 0 for entry in report["results"])
    assert await bench_databases(server_dsn) == before
    return report, {entry["workload"]: entry for entry in report["results"]}


async def test_bench_runs_every_workload_on_a_database_of_its_own(server_dsn: str) -> None:
    report, by_workload = await run_bench(
        server_dsn, "--jobs", "300", "--enqueue-jobs", "200", "--latency-samples", "5"
    )
    assert list(by_workload) == [
        "single_enqueue",
        "batch_enqueue",
        "process_1_worker",
        "process_2_workers",
        "latency",
    ]
    assert by_workload["single_enqueue"]["details"]["jobs"] == 200
    assert by_workload["process_2_workers"]["details"]["jobs"] == 300
    assert by_workload["process_2_workers"]["details"]["worker_processes"] == 2
    assert by_workload["process_1_worker"]["details"]["peak_rss_mib"] > 0
    assert by_workload["latency"]["details"]["samples"] == 5
    assert report["machine"]["postgresql"]


async def test_bench_processes_among_finished_jobs_and_times_claims_during_a_prune(
    server_dsn: str,
) -> None:
    report, by_workload = await run_bench(
        server_dsn,
        *("--jobs", "200", "--enqueue-jobs", "50", "--workers", "1", "--latency-samples", "3"),
        *("--finished-rows", "5000", "--finished-rows", "8000"),
        # Enough that the prune lasts ~0.1 s, so the 500 jobs/s stream times claims during it.
        *("--prune-rows", "20000"),
    )
    assert list(by_workload) == [
        "single_enqueue",
        "batch_enqueue",
        "process_1_worker",
        "process_1_worker_5000_finished",
        "process_1_worker_8000_finished",
        "latency",
        "latency_during_prune",
    ]
    assert report["settings"]["finished_rows"] == [5000, 8000]
    assert report["settings"]["prune_rows"] == 20000
    # The run counts the finished rows it inserted and fails if any is missing.
    among_finished = by_workload["process_1_worker_5000_finished"]["details"]
    assert among_finished["finished_rows"] == 5000
    assert among_finished["jobs"] == 200
    assert among_finished["worker_processes"] == 1
    assert among_finished["fill_seconds"] > 0
    assert by_workload["process_1_worker_8000_finished"]["details"]["finished_rows"] == 8000
    during_prune = by_workload["latency_during_prune"]["details"]
    assert during_prune["rows_deleted"] == 20000
    assert during_prune["rows_left"] == 0
    assert during_prune["prune_seconds"] > 0
    assert during_prune["before_samples"] > 0
    assert during_prune["during_samples"] > 0
    assert 0 < during_prune["before_p50_ms"] <= during_prune["before_p99_ms"]
    assert 0 < during_prune["during_p50_ms"] <= during_prune["during_p99_ms"]


async def test_bench_measures_a_worker_beside_scheduled_and_paused_backlogs(
    server_dsn: str,
) -> None:
    report, by_workload = await run_bench(
        server_dsn,
        *("--jobs", "100", "--enqueue-jobs", "50", "--workers", "1", "--latency-samples", "3"),
        *("--scheduled-rows", "3000", "--paused-rows", "2000", "--stream-seconds", "2"),
    )
    backlogs = [name for name in by_workload if name.startswith("backlog_")]
    assert backlogs == ["backlog_empty", "backlog_scheduled_3000", "backlog_paused_2000"]
    assert report["settings"]["scheduled_rows"] == [3000]
    assert report["settings"]["paused_rows"] == [2000]
    for name in backlogs:
        details = by_workload[name]["details"]
        assert details["jobs"] == 100
        # Three rounds of 100 jobs each; every streamed job started once (the run checks it),
        # about 40 of them in 2 s.
        assert len(details["rounds"]) == 3
        assert all(rate > 0 for rate in details["rounds"])
        assert 30 <= details["streamed"] <= 50
        assert 0 < details["wake_p50_ms"] <= details["wake_p99_ms"]
        assert details["db_cpu_ms_per_job"] is not None  # the server runs on this machine
    scheduled = by_workload["backlog_scheduled_3000"]["details"]
    assert (scheduled["backlog"], scheduled["rows"]) == ("scheduled", 3000)
    assert scheduled["throughput_ratio"] > 0
    assert scheduled["wake_p99_ratio"] > 0
    assert by_workload["backlog_paused_2000"]["details"]["rows"] == 2000


@pytest.mark.parametrize("name", ['x"; DROP DATABASE postgres; --', "Bench", "", "a" * 64])
async def test_the_bench_store_refuses_a_database_name_it_did_not_make(
    db: asyncpg.Connection, name: str
) -> None:
    with pytest.raises(ValueError, match="not a database name pgqueue makes"):
        await BenchStore(db).create_database(name)
    with pytest.raises(ValueError, match="not a database name pgqueue makes"):
        await BenchStore(db).drop_database(name)
    # By name: the suite makes and drops other tests' databases meanwhile.
    names = {"postgres", name, name.lower()}
    found = await db.fetch(
        "SELECT datname FROM pg_database WHERE datname::text = ANY($1::text[])", list(names)
    )
    assert [row["datname"] for row in found] == ["postgres"]
