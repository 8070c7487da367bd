"""How long finished jobs are kept before pruning deletes them. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pgqueue.durations import check_duration
from pgqueue.records import JobStatus


@dataclass(frozen=True)
class Retention:
    """Keep finished jobs this long after they finished; ``timedelta(0)`` keeps them forever.

    Failed jobs are kept longer by default: someone may still want to retry them.
    """

    completed: timedelta = timedelta(days=1)
    failed: timedelta = timedelta(days=7)
    cancelled: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        for status, period in self._all():  # now() - period must stay a timestamp
            check_duration(period, f"the retention of {status} jobs")

    def periods(self) -> list[tuple[JobStatus, timedelta]]:
        """The statuses that are pruned, each with how long its jobs are kept."""
        return [(status, period) for status, period in self._all() if period > timedelta(0)]

    def _all(self) -> list[tuple[JobStatus, timedelta]]:
        return [
            (JobStatus.COMPLETED, self.completed),
            (JobStatus.FAILED, self.failed),
            (JobStatus.CANCELLED, self.cancelled),
        ]
