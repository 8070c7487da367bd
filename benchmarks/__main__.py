"""``python -m benchmarks``: pgqueue against its peers on this machine; see benchmarks/README.md.

Prints the tables, writes ``<out>/<date>-<host>.json`` (after every run, so an interrupted
comparison keeps what it measured), ``<date>-<host>.png`` and ``<out>/latest.png``. Exits 1 if
any run failed, 2 on bad arguments, 130 when interrupted (SIGINT or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from benchmarks.chart import render_chart
from benchmarks.harness import Plan, run_benchmarks
from benchmarks.peer import REPOSITORY, WORKLOADS
from benchmarks.report import read_json, render_tables, result_path, write_json
from benchmarks.systems import SYSTEMS

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_OUT = REPOSITORY / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.from_json:
        report = read_json(args.from_json)
        print(render_tables(report))
        print(render_chart(report, [args.from_json.with_suffix(".png")]))
        return 0
    if urlsplit(args.dsn).scheme not in ("postgres", "postgresql"):
        parser.error(f"--dsn {args.dsn!r}: use a postgresql:// URL of a server (CREATEDB needed)")
    plan = Plan(
        dsn=args.dsn,
        systems=_names(parser, "--systems", args.systems, tuple(SYSTEMS)),
        workloads=_names(parser, "--workloads", args.workloads, WORKLOADS),
        reps=args.reps,
        jobs=args.jobs,
        latency_samples=args.latency_samples,
        timeout=args.timeout,
    )
    saved: list[Path] = []

    def save(report: dict[str, Any]) -> None:
        if not saved:
            saved.append(result_path(args.out, report))
        write_json(report, saved[0])

    try:
        report = asyncio.run(run_benchmarks(plan, save))
    except (KeyboardInterrupt, asyncio.CancelledError):  # SIGINT, or SIGTERM (harness)
        kept = f"; the runs so far are in {saved[0]}" if saved else ""
        print(f"interrupted: children stopped, databases dropped{kept}", file=sys.stderr)
        return 130
    except (OSError, asyncpg.PostgresError) as error:  # the server, not a run, failed
        print(f"python -m benchmarks: {args.dsn}: {error}", file=sys.stderr)
        return 1
    print(render_tables(report))
    print(f"results: {saved[0]}")
    print(render_chart(report, [saved[0].with_suffix(".png"), args.out / "latest.png"]))
    return 1 if any("error" in run for run in report["runs"]) else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare pgqueue with a raw asyncpg baseline, PgQueuer and Procrastinate: "
        "each workload on a fresh database, repetitions interleaved, system order rotated.",
    )
    add = parser.add_argument
    add("--jobs", type=_positive, default=20_000, help="N per run (default: %(default)s)")
    add("--reps", type=_positive, default=3, help="repetitions (default: %(default)s)")
    add("--systems", default=",".join(SYSTEMS), help="comma-separated (default: %(default)s)")
    add("--workloads", default=",".join(WORKLOADS), help="comma-separated (default: %(default)s)")
    add(
        "--latency-samples",
        type=_positive,
        default=200,
        help="enqueues timed on the idle worker (default: %(default)s)",
    )
    add("--timeout", type=_positive, default=900, help="seconds one run may take (%(default)s)")
    add(
        "--dsn",
        default=os.environ.get("PGQUEUE_DSN", DEFAULT_DSN),
        help=f"server to CREATE DATABASE on (default: $PGQUEUE_DSN, else {DEFAULT_DSN})",
    )
    add("--out", type=Path, default=DEFAULT_OUT, help="results directory (benchmarks/results)")
    add("--from-json", type=Path, help="re-render the tables and chart of a results file")
    return parser


def _names(
    parser: argparse.ArgumentParser, option: str, value: str, known: tuple[str, ...]
) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if unknown := [name for name in names if name not in known]:
        parser.error(f"{option}: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    if not names:
        parser.error(f"{option}: name at least one of {', '.join(known)}")
    return tuple(dict.fromkeys(names))  # in the order given, once each


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return number


if __name__ == "__main__":
    sys.exit(main())
