"""The overview's small charts: per-queue series of the last hour, drawn as SVG polylines by
the template. Pure arithmetic on ThroughputMinute rows."""

from __future__ import annotations

from dataclasses import dataclass

from pgqueue.records import ThroughputMinute

WIDTH, HEIGHT = 120, 24


@dataclass(frozen=True)
class QueueActivity:
    """One queue's last hour: per-minute completions and failures, and their totals."""

    completed: list[int]
    failed: list[int]

    @property
    def total_completed(self) -> int:
        return sum(self.completed)

    @property
    def total_failed(self) -> int:
        return sum(self.failed)

    @property
    def failure_rate(self) -> float | None:
        """Failed among the jobs that completed or failed; None when none did."""
        finished = self.total_completed + self.total_failed
        return None if finished == 0 else self.total_failed / finished

    def points(self, series: list[int]) -> str:
        """SVG polyline points for one series, scaled so both series share the y axis."""
        top = max(max(self.completed), max(self.failed), 1)
        step = WIDTH / max(len(series) - 1, 1)
        return " ".join(
            f"{i * step:.1f},{HEIGHT - value * HEIGHT / top:.1f}" for i, value in enumerate(series)
        )


def activity_by_queue(rows: list[ThroughputMinute], *, minutes: int) -> dict[str, QueueActivity]:
    """Every queue's series over the last ``minutes``, oldest first (missing minutes are
    zeros)."""
    activity: dict[str, QueueActivity] = {}
    for row in rows:
        slot = minutes - 1 - row.minutes_ago
        if not 0 <= slot < minutes:
            continue
        queue = activity.setdefault(row.queue, QueueActivity([0] * minutes, [0] * minutes))
        queue.completed[slot] += row.completed
        queue.failed[slot] += row.failed
    return activity
