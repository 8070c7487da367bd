"""One workload of one system on one database, in a process of its own.

``python -m benchmarks.child SYSTEM WORKLOAD DSN RESULT_FILE --jobs N --latency-samples S
--deadline SECONDS``: installs the system's schema into the (empty) database DSN, runs the
workload on the system's client event loop and writes the result to RESULT_FILE as JSON. The
driver (``benchmarks.harness``) creates and drops the database and enforces the deadline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.peer import WORKLOADS, Result, Settings, System, event_loop_name, run_event_loop
from benchmarks.systems import SYSTEMS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.child")
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("dsn")
    parser.add_argument("result", type=Path)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--latency-samples", type=int, required=True)
    parser.add_argument("--deadline", type=float, required=True)
    args = parser.parse_args(argv)

    system = SYSTEMS[args.system].load()
    settings = Settings(args.jobs, args.latency_samples, args.deadline)
    result = run_event_loop(
        _install_and_run(system, args.workload, args.dsn, settings), uvloop=system.uses_uvloop
    )
    record = {
        "value": result.value,
        "unit": result.unit,
        "details": result.details,
        "client_event_loop": event_loop_name(uvloop=system.uses_uvloop),
        "configuration": system.configuration(),
    }
    args.result.write_text(json.dumps(record))


async def _install_and_run(system: System, workload: str, dsn: str, settings: Settings) -> Result:
    await system.install(dsn)
    return await system.run(workload, dsn, settings)


if __name__ == "__main__":
    main()
