"""A running worker's parts, built from the store and the worker's settings (never the
``Queue``), and started and stopped in order.

Each part gets what it uses: the store, a few settings, and the ``Slots`` (the jobs the worker
holds) in place of callbacks into the worker. The order matters: the worker's row appears only
once it listens, and on stop the services that find work stop before the running jobs are
waited for.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from pgqueue.registry import Registry
from pgqueue.store import JobStore
from pgqueue.worker.completer import Completer
from pgqueue.worker.config import WorkerSettings
from pgqueue.worker.executor import ErrorHook, JobExecutor
from pgqueue.worker.fetcher import Fetcher
from pgqueue.worker.heartbeat import Heartbeat
from pgqueue.worker.listener import Listener
from pgqueue.worker.loop_watch import LoopWatch
from pgqueue.worker.maintenance import Maintenance
from pgqueue.worker.scheduler import Scheduler
from pgqueue.worker.slots import Slots

if TYPE_CHECKING:
    from pgqueue.worker.metrics import MetricsServer, WorkerMetrics


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkerParts:
    slots: Slots
    completer: Completer
    fetcher: Fetcher
    listener: Listener | None  # None: poll only
    heartbeat: Heartbeat
    maintenance: Maintenance
    scheduler: Scheduler
    metrics_server: MetricsServer | None  # None: no metrics

    async def register(self) -> None:
        """Start what runs jobs and listens, then register the worker (its first beat): a
        worker row means it is listening."""
        if self.metrics_server is not None:
            await self.metrics_server.start()
        if self.listener is not None:
            await self.listener.start()
        self.completer.start()
        await self.heartbeat.start()

    async def start_services(self) -> None:
        await self.maintenance.start()
        await self.scheduler.start()

    async def stop_services(self) -> None:
        await self.scheduler.stop()
        await self.maintenance.stop()

    async def close(self) -> None:
        """After the running jobs: stop listening, deregister, stop serving metrics."""
        if self.listener is not None:
            await self.listener.stop()
        await self.heartbeat.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()


def build_parts(
    store: JobStore,
    settings: WorkerSettings,
    *,
    worker_id: UUID,
    queues: Sequence[str],
    job_types: Sequence[str],
    registry: Registry,
    error_hooks: list[ErrorHook],
) -> WorkerParts:
    slots = Slots(settings.concurrency)
    metrics, metrics_server = _metrics(store, settings, queues, slots)
    completer = Completer(
        store,
        worker_id,
        default_max_attempts=settings.default_max_attempts,
        on_written=slots.written,
    )
    executor = JobExecutor(
        registry=registry,
        store=store,
        completer=completer,
        worker_id=worker_id,
        defaults=settings.defaults,
        error_hooks=error_hooks,
        observer=metrics,
    )
    fetcher = Fetcher(
        store,
        worker_id=worker_id,
        queues=queues,
        job_types=job_types,
        poll_interval=settings.poll_interval,
        prefetch=settings.prefetch,
        slots=slots,
        executor=executor,
    )
    return WorkerParts(
        slots=slots,
        completer=completer,
        fetcher=fetcher,
        listener=(
            Listener(store, queues, settings.heartbeat_interval, fetcher.nudge, slots.cancel)
            if settings.listen
            else None
        ),
        heartbeat=Heartbeat(
            store,
            worker_id,
            queues,
            settings.concurrency,
            interval=settings.heartbeat_interval,
            lease=settings.heartbeat_timeout,
            watch=LoopWatch(asyncio.get_running_loop(), hung_after=settings.blocked_loop_timeout),
        ),
        maintenance=Maintenance(
            store,
            settings,
            worker_id=worker_id,
            slots=slots,
            on_released=fetcher.nudge,
            on_rescued=_ignore if metrics is None else metrics.jobs_rescued,
        ),
        scheduler=Scheduler(
            store, declared=registry.schedules(), poll_interval=settings.poll_interval
        ),
        metrics_server=metrics_server,
    )


def _metrics(
    store: JobStore, settings: WorkerSettings, queues: Sequence[str], slots: Slots
) -> tuple[WorkerMetrics | None, MetricsServer | None]:
    if settings.metrics_port is None:
        return None, None
    from pgqueue.worker.metrics import MetricsServer, WorkerMetrics  # prometheus_client

    metrics = WorkerMetrics(store, queues, running_jobs=lambda: len(slots.active))
    return metrics, MetricsServer(metrics, settings.metrics_host, settings.metrics_port)


def _ignore(count: int) -> None:
    pass
