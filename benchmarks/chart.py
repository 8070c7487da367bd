"""The report as a PNG: processing and enqueue throughput and wake-up latency per system.

Bars are medians, whiskers the min-max over the repetitions. Needs matplotlib (the ``bench``
extra); without it the chart is skipped with a message.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.report import Figures, figures, systems_measured

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Per panel: title, log scale, and its bars: (workload, details key or "" for the value, label).
_PANELS: tuple[tuple[str, bool, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "Processing N no-op jobs, jobs/s",
        False,
        (("process_1_worker", "", "1 worker"), ("process_2_workers", "", "2 workers")),
    ),
    (
        "Enqueue, jobs/s (log scale)",
        True,
        (("single_enqueue", "", "single"), ("batch_enqueue", "", "batch of 1000")),
    ),
    (
        "Idle wake-up latency, ms",
        False,
        (("latency", "p50_ms", "p50"), ("latency", "p99_ms", "p99")),
    ),
)


def render_chart(report: dict[str, Any], paths: Sequence[Path]) -> str:
    """Draw the chart into each of ``paths``; a line saying what was written or why not."""
    if importlib.util.find_spec("matplotlib") is None:
        return "chart skipped: matplotlib is not installed (pip install -e '.[bench]')"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = systems_measured(report)
    figure, axes = plt.subplots(1, len(_PANELS), figsize=(16, 5.5), layout="constrained")
    for axis, (title, log_scale, series) in zip(axes, _PANELS, strict=True):
        has_bars = _draw_panel(axis, report, systems, series)
        axis.set_title(title)
        if log_scale and has_bars:
            axis.set_yscale("log")
    figure.suptitle(_title(report))
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    plt.close(figure)
    return "chart: " + ", ".join(str(path) for path in paths)


def _draw_panel(
    axis: Axes,
    report: dict[str, Any],
    systems: Sequence[str],
    series: Sequence[tuple[str, str, str]],
) -> bool:
    """Grouped bars, one group per system; whether any bar has a height."""
    width = 0.8 / len(series)
    has_bars = False
    for index, (workload, key, label) in enumerate(series):
        found = [figures(report, system, workload, key) for system in systems]
        positions = [n + (index - (len(series) - 1) / 2) * width for n in range(len(systems))]
        medians = [f.median if f else 0.0 for f in found]
        has_bars = has_bars or any(medians)
        errors = [_whiskers(f) for f in found]
        bars = axis.bar(
            positions,
            medians,
            width,
            label=label,
            yerr=[[low for low, _ in errors], [high for _, high in errors]],
            capsize=3,
        )
        axis.bar_label(bars, labels=[_compact(m) if m else "" for m in medians], fontsize=8)
    axis.set_xticks(range(len(systems)), systems)
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    return has_bars


def _whiskers(found: Figures | None) -> tuple[float, float]:
    if found is None:
        return 0.0, 0.0
    return found.median - min(found.values), max(found.values) - found.median


def _compact(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.3g}"


def _title(report: dict[str, Any]) -> str:
    machine, settings = report["machine"], report["settings"]
    return (
        f"pgqueue and peers, {report['started_at'][:10]}: N={settings['jobs']:,}, "
        f"{settings['reps']} rep(s), bars = median, whiskers = min-max; "
        f"{machine['cpus']} CPUs, PostgreSQL {machine['postgresql']['version']}"
    )
