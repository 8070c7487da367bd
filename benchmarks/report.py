"""A report's medians and ranges, as tables for the terminal, a JSON file and a PNG chart."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.peer import WORKLOADS

_LATENCY = "latency"
_HEADINGS = {
    "single_enqueue": "W1 single enqueue, jobs/s",
    "batch_enqueue": "W2 batch enqueue, jobs/s",
    "process_1_worker": "W3 1 worker, jobs/s",
    "process_2_workers": "W3 2 workers, jobs/s",
    "latency": "W4 latency p50, ms",
}


@dataclass(frozen=True)
class Figures:
    """One measure over the repetitions of a (system, workload)."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cell(self, unit: str) -> str:
        median, low, high = (_number(v, unit) for v in (self.median, *_range(self.values)))
        return median if len(self.values) == 1 else f"{median} ({low}-{high})"


def figures(report: dict[str, Any], system: str, workload: str, key: str = "") -> Figures | None:
    """The run values (or ``details[key]``) of the successful runs; None if there were none."""
    values = tuple(
        float(run["details"][key] if key else run["value"])
        for run in report["runs"]
        if run["system"] == system and run["workload"] == workload and "error" not in run
    )
    return Figures(values) if values else None


def render_tables(report: dict[str, Any]) -> str:
    """Every table and note of the report, as Markdown for the terminal and for pasting."""
    sections = [
        _title(report),
        _main_table(report),
        _latency_table(report),
        _memory_table(report),
        _ratio_to_raw_table(report),
        _pgqueue_table(report),
        _notes(report),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def result_path(directory: Path, report: dict[str, Any]) -> Path:
    """``<date>-<host>.json`` in ``directory``, with ``-2``, ``-3``... if taken."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", report["machine"]["hostname"]) or "host"
    stem = f"{report['started_at'][:10]}-{host}"
    path, number = directory / f"{stem}.json", 1
    while path.exists():
        number += 1
        path = directory / f"{stem}-{number}.json"
    return path


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def systems_measured(report: dict[str, Any]) -> list[str]:
    return [name for name in report["settings"]["systems"] if _has_runs(report, name)]


def workloads_run(report: dict[str, Any]) -> list[str]:
    return [name for name in WORKLOADS if name in report["settings"]["workloads"]]


def _has_runs(report: dict[str, Any], system: str) -> bool:
    return any(run["system"] == system for run in report["runs"])


def _title(report: dict[str, Any]) -> str:
    machine, settings = report["machine"], report["settings"]
    cpu_model = machine["cpu_model"] or "model unknown"
    return (
        f"# Peer comparison, {report['started_at'][:10]}: N={settings['jobs']:,}, "
        f"{settings['reps']} rep(s), median (min-max)\n"
        f"{machine['cpus']} CPUs ({cpu_model}), {machine['platform']}, "
        f"{machine['python']}, PostgreSQL {machine['postgresql']['version']}"
    )


def _main_table(report: dict[str, Any]) -> str:
    workloads = workloads_run(report)
    rows = []
    for system in systems_measured(report):
        cells = []
        for workload in workloads:
            found = figures(report, system, workload)
            cells.append(found.cell(_unit(workload)) if found else "failed")
        rows.append([system, *cells])
    return _markdown(["system", *(_HEADINGS[w] for w in workloads)], rows)


def _latency_table(report: dict[str, Any]) -> str:
    if _LATENCY not in report["settings"]["workloads"]:
        return ""
    keys = ("p50_ms", "p95_ms", "p99_ms", "max_ms")
    rows = []
    for system in systems_measured(report):
        cells = [figures(report, system, _LATENCY, key) for key in keys]
        rows.append([system, *(found.cell("ms") if found else "failed" for found in cells)])
    headers = ["W4 latency, ms", "p50", "p95", "p99", "max"]
    return _markdown(headers, rows)


def _memory_table(report: dict[str, Any]) -> str:
    workloads = [w for w in workloads_run(report) if w.startswith("process_")]
    if not workloads:
        return ""
    rows = []
    for system in systems_measured(report):
        cells = [figures(report, system, workload, "peak_rss_mib") for workload in workloads]
        rows.append([system, *(found.cell("MiB") if found else "failed" for found in cells)])
    headers = ["peak RSS per worker, MiB", *(_HEADINGS[w].split(",")[0] for w in workloads)]
    return _markdown(headers, rows)


def _ratio_to_raw_table(report: dict[str, Any]) -> str:
    systems = systems_measured(report)
    if "raw" not in systems:
        return ""
    workloads = workloads_run(report)
    rows = [
        [system, *(_ratio(report, system, "raw", workload) for workload in workloads)]
        for system in systems
        if system != "raw"
    ]
    headers = ["ratio to raw (median / median)", *(_short(w) for w in workloads)]
    note = "Throughput: the fraction of raw's rate. Latency: how many times raw's p50."
    return _markdown(headers, rows) + "\n" + note if rows else ""


def _pgqueue_table(report: dict[str, Any]) -> str:
    systems = systems_measured(report)
    if "pgqueue" not in systems:
        return ""
    workloads = workloads_run(report)
    rows = []
    for peer in (system for system in systems if system not in ("pgqueue", "raw")):
        cells = []
        for workload in workloads:
            # Latency is inverted so that every cell reads the same way: > 1 is pgqueue ahead.
            mine, theirs = ("pgqueue", peer) if workload != _LATENCY else (peer, "pgqueue")
            cells.append(_ratio(report, mine, theirs, workload, suffix="x"))
        rows.append([peer, *cells])
    headers = ["pgqueue against a peer", *(_short(w) for w in workloads)]
    note = (
        "Above 1: pgqueue ahead. Throughput: pgqueue's rate / the peer's. "
        "Latency: the peer's p50 / pgqueue's."
    )
    return _markdown(headers, rows) + "\n" + note if rows else ""


def _ratio(
    report: dict[str, Any], system: str, base: str, workload: str, *, suffix: str = ""
) -> str:
    found, reference = figures(report, system, workload), figures(report, base, workload)
    if not found or not reference or not reference.median:
        return "-"
    ratio = found.median / reference.median
    if workload == _LATENCY and not suffix:
        suffix = "x"
    return f"{ratio:.2f}{suffix}" if ratio >= 0.1 else f"{ratio:.3f}{suffix}"


def _notes(report: dict[str, Any]) -> str:
    lines = []
    for name, entry in report["systems"].items():
        if entry["status"] == "skipped":
            lines.append(f"- skipped {name}: {entry['reason']}")
        if "warning" in entry:
            lines.append(f"- {name}: unexpected version: {entry['warning']}")
    for run in report["runs"]:
        where = f"rep {run['rep']} {run['system']} {run['workload']}"
        if "error" in run:
            lines.append(f"- FAILED {where}: {run['error']}")
        elif "leftover_processes" in run:
            lines.append(f"- {where}: {run['leftover_processes']}")
    if noisy := sum(1 for run in report["runs"] if "output" in run and "error" not in run):
        lines.append(f"- {noisy} successful run(s) printed output: see `output` in the JSON")
    return "\n".join(lines)


def _markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = (str(cell) for cell in cells)
        padded = [first.ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def _range(values: Sequence[float]) -> tuple[float, float]:
    return min(values), max(values)


def _number(value: float, unit: str) -> str:
    if unit == "jobs/s":
        return f"{value:,.0f}"
    return f"{value:.1f}" if unit == "MiB" else f"{value:.2f}"


def _unit(workload: str) -> str:
    return "ms" if workload == _LATENCY else "jobs/s"


def _short(workload: str) -> str:
    return _HEADINGS[workload].split(",")[0]
