"""The jobs a worker holds, in one object the fetcher, the completer and the maintenance share.

- ``ready``: claimed, waiting for a free slot (at most ``prefetch`` of them);
- ``active``: running, one task each, at most ``concurrency``;
- ``held``: claimed and their outcome not yet written (ready, active, or being written). The
  maintenance hands these to the database, which releases any job running under this worker
  that is not among them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from pgqueue.rows import ClaimedJob

log = logging.getLogger("pgqueue.worker")


def _nothing() -> None:
    pass


class Slots:
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.ready: deque[ClaimedJob] = deque()
        self.active: dict[int, asyncio.Task[None]] = {}
        self.held: set[int] = set()
        self.on_freed: Callable[[], None] = _nothing  # set by the fetcher: start the next job

    def free(self) -> int:
        return self.concurrency - len(self.active)

    def claimed(self, jobs: Iterable[ClaimedJob]) -> None:
        self.held.update(job.id for job in jobs)

    def written(self, job_ids: Iterable[int]) -> None:
        """Their outcomes reached the database (the completer's ``on_written``)."""
        self.held.difference_update(job_ids)

    def start(self, job: ClaimedJob, attempt: Coroutine[Any, Any, None]) -> None:
        # Named for the operator: the loop watch reports the task that blocks the loop by its name.
        task = asyncio.create_task(attempt, name=f"job {job.id} ({job.job_type})")
        self.active[job.id] = task
        task.add_done_callback(lambda t: self._finish(job.id, t))

    def _finish(self, job_id: int, task: asyncio.Task[None]) -> None:
        del self.active[job_id]
        if task.cancelled():
            self.held.discard(job_id)  # cancelled (its row says so) or released at shutdown
        elif task.exception() is not None:
            log.error(
                "job %s: its outcome could not be recorded; it stays running until released",
                job_id,
                exc_info=task.exception(),
                extra={"job_id": job_id},
            )
        self.on_freed()

    def cancel(self, job_id: int) -> None:
        """The job was cancelled: forget it if it has not started, else stop its task."""
        for job in self.ready:
            if job.id == job_id:
                self.ready.remove(job)
                self.held.discard(job_id)  # claimed but not started: its row says cancelled
                return
        task = self.active.get(job_id)
        if task is not None:
            log.info(
                "job %s was cancelled while running: stopping it", job_id, extra={"job_id": job_id}
            )
            task.cancel()
