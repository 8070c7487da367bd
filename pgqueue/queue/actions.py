"""The Queue's operator actions: cancel, retry, take out of or put back from the dead letter
queue, clear, and prune."""

from __future__ import annotations

from collections.abc import Sequence

from pgqueue.errors import InvalidJob
from pgqueue.options import check_queue_name
from pgqueue.pruning import prune_finished_jobs
from pgqueue.records import JobStatus, names_a_job
from pgqueue.retention import Retention
from pgqueue.store import JobStore


class OperatorActions:
    store: JobStore

    async def cancel(self, job_id: int) -> bool:
        """Cancel a pending job, or stop a running one (its worker cancels the task).

        Returns False if the job had already finished.
        """
        return names_a_job(job_id) and await self.store.cancel_job(id=job_id)

    async def retry(self, job_id: int) -> bool:
        """Put a failed or cancelled job back to pending with fresh attempts."""
        return names_a_job(job_id) and await self.store.retry_job(id=job_id)

    async def cancel_failed(self, job_ids: Sequence[int]) -> list[int]:
        """Take failed jobs out of the dead letter queue without running them: they become
        cancelled, errors kept. Returns the ids that were failed (and now are cancelled)."""
        return await self.store.cancel_failed_jobs(ids=[i for i in job_ids if names_a_job(i)])

    async def retry_failed(
        self,
        queue: str | None = None,
        job_type: str | None = None,
        *,
        job_ids: Sequence[int] | None = None,
    ) -> int:
        """Put every failed job (of one queue and/or job type, or else among ``job_ids``) back to
        pending; how many. Unlike ``retry``, a job that is no longer failed (cancelled
        meanwhile, say) is left as it is."""
        if job_ids is not None:
            if queue is not None or job_type is not None:
                raise ValueError("give job_ids, or queue and job_type, not both")
            return await self.store.retry_failed_ids(ids=[i for i in job_ids if names_a_job(i)])
        if job_type is not None and "\x00" in job_type:
            raise InvalidJob("job_type contains a NUL character, which no job type can")
        return await self.store.retry_failed_jobs(
            queue=None if queue is None else check_queue_name(queue), job_type=job_type
        )

    async def clear(
        self, queue: str | None = None, *, status: JobStatus | str = JobStatus.PENDING
    ) -> int:
        """Delete the jobs of one status (pending by default; failed or completed too) of one
        queue, or of all; return how many were deleted. Running jobs are never cleared."""
        status = JobStatus(status)
        if status is JobStatus.RUNNING:
            raise ValueError("running jobs cannot be cleared: cancel them first")
        return await self.store.clear_jobs(
            status=status, queue=None if queue is None else check_queue_name(queue)
        )

    async def prune(
        self,
        retention: Retention | None = None,
        *,
        batch_size: int = 1000,
        max_batches: int | None = None,
    ) -> dict[JobStatus, int]:
        """Delete finished jobs older than their retention, in batches of ``batch_size`` so no
        statement holds locks for long; returns how many of each status were deleted.

        One pruner at a time: while another worker prunes, this deletes nothing.
        """
        return await prune_finished_jobs(
            self.store, retention or Retention(), batch_size=batch_size, max_batches=max_batches
        )
