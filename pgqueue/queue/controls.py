"""The Queue's settings of a queue, shared by every worker: pause, resume and limits."""

from __future__ import annotations

from datetime import timedelta

from pgqueue.limits import QueueLimit
from pgqueue.options import check_queue_name
from pgqueue.store import JobStore


class QueueControls:
    store: JobStore

    async def pause_queue(self, queue: str) -> None:
        """No worker claims jobs from ``queue`` until it is resumed (running jobs go on)."""
        await self.store.set_queue_paused(queue=check_queue_name(queue), paused=True)

    async def resume_queue(self, queue: str) -> None:
        await self.store.set_queue_paused(queue=check_queue_name(queue), paused=False)

    async def set_queue_limits(
        self,
        queue: str,
        *,
        concurrency: int | None = None,
        rate: int | None = None,
        per: timedelta | float = timedelta(seconds=1),
    ) -> None:
        """Limit ``queue`` across all workers: at most ``concurrency`` jobs running at once, at
        most ``rate`` jobs started per ``per`` (windows aligned on the database clock). None
        removes a limit."""
        await self.store.set_queue_limits(
            queue=check_queue_name(queue),
            limit=QueueLimit(concurrency=concurrency, rate=rate, per=per),
        )
