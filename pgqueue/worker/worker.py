"""Worker: claims jobs from its queues and runs them until stopped.

``run()`` checks the schema, listens for enqueues and cancel requests, heartbeats, fetches and
executes jobs, rescues the jobs of dead workers, and on stop lets running jobs finish within the
grace period before releasing the rest back to pending. Its settings are checked in
``config.py``, and its parts built, started and stopped in ``parts.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from uuid import uuid4

from pgqueue.errors import ConfigurationError
from pgqueue.limits import QueueLimit
from pgqueue.queue import Queue
from pgqueue.registry import Registry, registry
from pgqueue.retention import Retention
from pgqueue.retry import Backoff
from pgqueue.worker.config import WorkerSettings
from pgqueue.worker.executor import ErrorHook
from pgqueue.worker.parts import WorkerParts, build_parts

log = logging.getLogger("pgqueue.worker")

DEFAULT_MAX_RETRIES = 3


class Worker:
    """Runs jobs from ``queues`` (default: every queue a registered job class or schedule
    names), and enqueues the ticks of the schedules it keeps.

    ``queue_limits`` sets cluster-wide limits when it starts: ``{"emails": 10}`` keeps at most
    10 email jobs running across all workers; a QueueLimit also sets a rate. Limits it does not
    give stay as they were.
    """

    def __init__(
        self,
        queue: Queue,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int = 10,
        prefetch: int | None = None,
        poll_interval: timedelta | float = timedelta(seconds=5),
        timeout: timedelta | float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: Backoff | None = None,
        shutdown_grace: timedelta | float = timedelta(seconds=30),
        heartbeat_interval: timedelta | float = timedelta(seconds=5),
        heartbeat_timeout: timedelta | float = timedelta(seconds=30),
        blocked_loop_timeout: timedelta | float = timedelta(minutes=5),
        retention: Retention | None = Retention(),  # noqa: B008 - immutable
        listen: bool = True,
        queue_limits: Mapping[str, int | QueueLimit] | None = None,
        job_registry: Registry | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "0.0.0.0",
    ) -> None:
        self.id = uuid4()
        self._store = queue.store  # the worker's parts use the store, not the Queue
        self._settings = WorkerSettings.checked(
            queues=queues,
            concurrency=concurrency,
            prefetch=prefetch,
            poll_interval=poll_interval,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            shutdown_grace=shutdown_grace,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            blocked_loop_timeout=blocked_loop_timeout,
            retention=retention,
            listen=listen,
            queue_limits=queue_limits,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        )
        self._registry = job_registry or registry
        self._error_hooks: list[ErrorHook] = []
        self._parts: WorkerParts | None = None  # while running
        self._hurry = asyncio.Event()
        self._finished = asyncio.Event()
        self._finished.set()
        self._started = asyncio.Event()
        # Set by stop(): a run that is starting, or has not begun yet, stops as soon as it can.
        self._stop_requested = False

    def on_error(self, hook: ErrorHook) -> ErrorHook:
        """Call ``hook(job, exc)`` (sync or async) after a job's attempt fails;
        ``job.context.attempt`` and ``job.context.will_retry`` say where it stands."""
        self._error_hooks.append(hook)
        return hook

    async def run(self) -> None:
        """Work until ``stop()`` or SIGINT/SIGTERM (a second signal stops at once)."""
        if not self._finished.is_set():
            raise RuntimeError("this worker is already running")
        queues, job_types = self._work_plan()
        await self._store.check_schema()
        for name, limit in self._settings.queue_limits.items():  # one not given stays as it was
            await self._store.set_queue_limits(queue=name, limit=limit, keep_unset=True)
        self._finished.clear()
        self._hurry.clear()
        parts = self._parts = build_parts(
            self._store,
            self._settings,
            worker_id=self.id,
            queues=queues,
            job_types=job_types,
            registry=self._registry,
            error_hooks=self._error_hooks,
        )
        if self._stop_requested:  # stop() came while this run was starting: claim nothing
            parts.fetcher.stop()
        with self._signal_handlers():  # through shutdown too, so a second signal can hurry it
            try:
                await self._work(parts)
            finally:
                try:
                    await self._shut_down(parts)
                finally:  # stop() waits on this, whatever went wrong above
                    self._parts = None
                    self._stop_requested = False
                    self._started.clear()
                    self._finished.set()

    async def wait_started(self) -> None:
        """Return once ``run()`` has registered this worker (its row is in pgqueue.workers)."""
        await self._started.wait()

    def _work_plan(self) -> tuple[list[str], list[str]]:
        """The queues to serve and the job types this process can run."""
        job_types = self._registry.names()
        if not job_types:
            raise ConfigurationError("no job classes are registered: import them (--app)")
        queues = self._settings.queues or sorted(
            {c.job_options.queue for c in self._registry.classes()}
            | {s.queue for s in self._registry.schedules()}
        )
        log.info(
            "worker %s: queues %s, concurrency %s, %s, job types %s",
            self.id,
            ",".join(queues),
            self._settings.concurrency,
            "woken by LISTEN" if self._settings.listen else "polling only",
            ", ".join(job_types),
        )
        return queues, job_types

    async def _work(self, parts: WorkerParts) -> None:
        """Register, start the services, and fetch until stopped."""
        try:
            await parts.register()
            self._started.set()
            await parts.start_services()
            await parts.fetcher.run()
        except asyncio.CancelledError:
            parts.fetcher.stop()  # no buffered job may start while the running ones are cancelled
            self._hurry.set()  # cancelled from outside: no grace period
            raise

    async def stop(self) -> None:
        """Claim nothing more, let running jobs finish within the grace period, release the rest.

        Called before ``run()`` has begun (say, just after ``create_task(worker.run())``), it
        makes that run stop as soon as it has started: it registers, claims nothing, and
        returns."""
        self._stop_requested = True
        if self._parts is not None:
            log.info(
                "worker %s stopping: waiting up to %ss for %s running jobs",
                self.id,
                self._settings.shutdown_grace.total_seconds(),
                len(self._parts.slots.active),
            )
            self._parts.fetcher.stop()
        await self._finished.wait()

    async def _shut_down(self, parts: WorkerParts) -> None:
        await parts.stop_services()
        await self._release_jobs(parts)
        await parts.close()

    async def _release_jobs(self, parts: WorkerParts) -> None:
        """Wait for the running jobs within the grace period, cancel the rest, write the last
        outcomes and release every job still held back to pending."""
        active = parts.slots.active
        await self._wait_for_running_jobs(active)
        unfinished = list(active.values())
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        try:
            await parts.completer.stop()
            released = await self._store.release_worker_jobs(worker_id=self.id)
        except Exception:
            log.exception("worker %s: could not record the last outcomes on shutdown", self.id)
            return
        parts.slots.held.clear()
        if released:
            log.info(
                "worker %s released %s unfinished jobs back to pending: %s",
                self.id,
                len(released),
                released,
            )

    async def _wait_for_running_jobs(self, active: Mapping[int, asyncio.Task[None]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.shutdown_grace.total_seconds()
        hurry = asyncio.create_task(self._hurry.wait())
        try:
            while active and not self._hurry.is_set() and loop.time() < deadline:
                await asyncio.wait(
                    [*active.values(), hurry],
                    timeout=deadline - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            hurry.cancel()

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals are delivered to the main thread only
            return
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            yield
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        fetcher = None if self._parts is None else self._parts.fetcher
        if fetcher is not None and not fetcher.stopping:
            log.info(
                "%s: stopping gracefully (up to %ss); send it again to stop now",
                name,
                self._settings.shutdown_grace.total_seconds(),
            )
            fetcher.stop()
        else:
            log.info("%s again: stopping now, releasing running jobs", name)
            self._hurry.set()
