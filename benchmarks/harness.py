"""The driver: each repetition runs every workload on every system, in a rotated system order.

Every run gets a database of its own, created here (``benchmarks_<system>_<hex>``) and dropped
here afterwards, whatever happened; its schema is installed by the child process through the
system's own API. The child runs in a session of its own, so that when it overruns its deadline
(or leaves anything behind) SIGTERM and then SIGKILL reach it and every worker it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg

from benchmarks.peer import BATCH, REPOSITORY, module_command
from benchmarks.systems import SYSTEMS, installed

_STOP_TIMEOUT = 10.0  # seconds a timed-out child's process group gets after SIGTERM
_OUTPUT_KEPT = 4000  # characters of a child's output kept in the report
_PACKAGES = (
    "pgqueue",
    "asyncpg",
    "uvloop",
    "pgqueuer",
    "procrastinate",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "pydantic",
    "sqlalchemy",
    "matplotlib",
)
_POSTGRES_SETTINGS = (
    "autovacuum",
    "checkpoint_timeout",
    "commit_delay",
    "fsync",
    "full_page_writes",
    "jit",
    "max_connections",
    "max_wal_size",
    "shared_buffers",
    "synchronous_commit",
    "wal_level",
    "wal_sync_method",
    "work_mem",
)


@dataclass(frozen=True)
class Plan:
    dsn: str  # a server where the user may CREATE DATABASE
    systems: tuple[str, ...]
    workloads: tuple[str, ...]
    reps: int
    jobs: int
    latency_samples: int
    timeout: float  # seconds one run (one child process) may take


async def run_benchmarks(plan: Plan, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Every run of the plan; ``save`` gets the report after each, so a crash keeps the rest."""
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main.cancel)  # unwind: stop children, drop databases
    try:
        report = await _new_report(plan)
        save(report)
        ready = [name for name in plan.systems if report["systems"][name]["status"] == "ready"]
        for rep in range(1, plan.reps + 1 if ready else 1):
            shift = (rep - 1) % len(ready)
            order = ready[shift:] + ready[:shift]
            for workload in plan.workloads:
                for system in order:
                    run = await run_once(plan, system, workload, rep)
                    _absorb(report, run)
                    save(report)
                    _print_progress(plan, run)
        report["finished_at"] = _now()
        report["machine"]["load_average_end"] = os.getloadavg()
        save(report)
        return report
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def run_once(plan: Plan, system: str, workload: str, rep: int) -> dict[str, Any]:
    """One workload of one system on a fresh database, dropped afterwards whatever happened."""
    database = f"benchmarks_{system}_{uuid4().hex[:10]}"  # made here: safe in the statement
    run: dict[str, Any] = {"rep": rep, "system": system, "workload": workload}
    run.update(database=database, started_at=_now())
    started = time.monotonic()
    await _administer(plan.dsn, f'CREATE DATABASE "{database}"')
    try:
        run.update(await _run_child(plan, system, workload, with_database(plan.dsn, database)))
    finally:
        await _administer(plan.dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    run["wall_seconds"] = round(time.monotonic() - started, 2)
    return run


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


async def _administer(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _run_child(plan: Plan, system: str, workload: str, dsn: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="benchmarks-") as directory:
        result_file = Path(directory) / "result.json"
        output_file = Path(directory) / "output.log"
        command = module_command("benchmarks.child", system, workload, dsn, str(result_file))
        command += ["--jobs", str(plan.jobs), "--latency-samples", str(plan.latency_samples)]
        command += ["--deadline", str(plan.timeout * 0.9)]  # its waits fail before it is killed
        with output_file.open("wb") as output_stream:
            child = await asyncio.create_subprocess_exec(
                *command,
                stdout=output_stream,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": _python_path()},
                start_new_session=True,  # its own process group, workers included
            )
            timed_out = False
            try:
                await asyncio.wait_for(child.wait(), plan.timeout)
            except TimeoutError:
                timed_out = True
            finally:
                leftovers = await _end_process_group(child)
        output = output_file.read_text(errors="replace").strip()
        outcome: dict[str, Any] = {"output": output[-_OUTPUT_KEPT:]} if output else {}
        if timed_out:
            outcome["error"] = f"timed out after {plan.timeout:.0f} s; stopped"
        elif child.returncode == 0 and result_file.exists():
            outcome.update(json.loads(result_file.read_text()))
        else:
            last_line = output.splitlines()[-1] if output else "no output"
            outcome["error"] = f"child exited with code {child.returncode}: {last_line}"
        if leftovers and not timed_out:
            outcome["leftover_processes"] = "the child left processes; stopped after the run"
        return outcome


async def _end_process_group(child: asyncio.subprocess.Process) -> bool:
    """Stop whatever of the child's process group still runs; whether anything did."""
    group = child.pid  # start_new_session: the child leads its own group
    if child.returncode is not None and not _group_alive(group):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while _group_alive(group) and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.wait(), 0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    await child.wait()
    return True


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _python_path() -> str:
    return os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH", "")]))


async def _new_report(plan: Plan) -> dict[str, Any]:
    return {
        "format": 1,
        "started_at": _now(),
        "machine": await _machine(plan.dsn),
        "packages": {name: installed(name) for name in _PACKAGES},
        "settings": {
            "jobs": plan.jobs,
            "enqueue_jobs": plan.jobs,
            "batch": BATCH,
            "latency_samples": plan.latency_samples,
            "reps": plan.reps,
            "systems": list(plan.systems),
            "workloads": list(plan.workloads),
            "timeout_s": plan.timeout,
            "order": "per repetition: each workload, then each system in an order rotated by one",
        },
        "systems": {name: _system_status(name) for name in plan.systems},
        "runs": [],
    }


def _system_status(name: str) -> dict[str, Any]:
    spec = SYSTEMS[name]
    if missing := spec.missing():
        reason = f"not installed: {', '.join(missing)} (pip install -e '.[bench]')"
        return {"status": "skipped", "reason": reason}
    status: dict[str, Any] = {"status": "ready"}
    if unexpected := spec.unexpected_versions():
        status["warning"] = "; ".join(unexpected)
    return status


def _absorb(report: dict[str, Any], run: dict[str, Any]) -> None:
    """Add a run; the system's configuration and client loop move to its entry (same each run)."""
    system = report["systems"][run["system"]]
    for key in ("configuration", "client_event_loop"):
        if key in run:
            system[key] = run.pop(key)
    report["runs"].append(run)


async def _machine(dsn: str) -> dict[str, Any]:
    connection = await asyncpg.connect(dsn)
    try:
        server_version = await connection.fetchval("SHOW server_version")
        rows = await connection.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
            list(_POSTGRES_SETTINGS),
        )
    finally:
        await connection.close()
    address = urlsplit(dsn)
    return {
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        "cpu_model": _proc_value("/proc/cpuinfo", "model name"),
        "memory": _proc_value("/proc/meminfo", "MemTotal"),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "postgresql": {
            "version": server_version,
            "address": f"{address.hostname or 'unix socket'}:{address.port or 5432}",
            "settings": {
                row["name"]: row["setting"] + (f" ({row['unit']})" if row["unit"] else "")
                for row in sorted(rows, key=lambda row: str(row["name"]))
            },
        },
        "load_average_start": os.getloadavg(),
    }


def _proc_value(path: str, key: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    return None


def _print_progress(plan: Plan, run: dict[str, Any]) -> None:
    figure = f"FAILED: {run['error']}" if "error" in run else f"{run['value']:,.1f} {run['unit']}"
    print(
        f"[rep {run['rep']}/{plan.reps}] {run['system']:<13} {run['workload']:<17} "
        f"{figure}  ({run['wall_seconds']:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
