"""Worker: claims jobs from its queues and runs them until stopped.

``run()`` checks the schema, listens for enqueues and cancel requests, heartbeats, fetches and
executes jobs, rescues the jobs of dead workers, and on stop lets running jobs finish within the
grace period before releasing the rest back to pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING
from uuid import uuid4

from pgqueue.durations import as_timedelta
from pgqueue.errors import ConfigurationError
from pgqueue.limits import QueueLimit
from pgqueue.options import check_max_retries, check_queue_name, max_attempts
from pgqueue.queue import Queue
from pgqueue.registry import Registry, registry
from pgqueue.retention import Retention
from pgqueue.retry import Backoff
from pgqueue.rows import ClaimedJob
from pgqueue.worker.completer import Completer
from pgqueue.worker.executor import ErrorHook, JobExecutor, RetryPolicy
from pgqueue.worker.fetcher import Fetcher
from pgqueue.worker.heartbeat import Heartbeat
from pgqueue.worker.listener import Listener
from pgqueue.worker.loop_watch import LoopWatch
from pgqueue.worker.maintenance import Maintenance
from pgqueue.worker.scheduler import Scheduler

if TYPE_CHECKING:
    from pgqueue.worker.metrics import WorkerMetrics

log = logging.getLogger("pgqueue.worker")

DEFAULT_MAX_RETRIES = 3
_PRUNE_BATCH = 1000


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
        _check_count("concurrency", concurrency, 1)
        check_max_retries(max_retries)
        self.id = uuid4()
        self._queue = queue
        self._queues = None if queues is None else [check_queue_name(q) for q in queues]
        self._concurrency = concurrency
        if prefetch is not None:
            _check_count("prefetch", prefetch, 0)
        self._prefetch = _default_prefetch(concurrency) if prefetch is None else prefetch
        self._poll_interval = _positive(poll_interval, "poll_interval")
        self._defaults = RetryPolicy(
            max_retries=max_retries,
            backoff=backoff or Backoff(),
            timeout=as_timedelta(timeout, "timeout"),
        )
        self._grace = _positive(shutdown_grace, "shutdown_grace", allow_zero=True)
        self._heartbeat_interval = _positive(heartbeat_interval, "heartbeat_interval")
        self._heartbeat_timeout = _positive(heartbeat_timeout, "heartbeat_timeout")
        check_heartbeat(self._heartbeat_interval, self._heartbeat_timeout)
        self._blocked_loop_timeout = _positive(blocked_loop_timeout, "blocked_loop_timeout")
        self._retention = retention  # None: this worker does not prune
        self._listen = listen  # False: poll only (PgBouncer in transaction mode)
        self._queue_limits = {
            check_queue_name(name): limit if isinstance(limit, QueueLimit) else QueueLimit(limit)
            for name, limit in (queue_limits or {}).items()
        }
        self._registry = job_registry or registry
        if metrics_port is not None and not 0 <= metrics_port <= 65535:
            raise ValueError(f"metrics_port must be from 0 to 65535, got {metrics_port}")
        self._metrics_port = metrics_port  # None: no metrics
        self._metrics_host = metrics_host
        self._metrics: WorkerMetrics | None = None
        self._error_hooks: list[ErrorHook] = []
        self._active: dict[int, asyncio.Task[None]] = {}
        self._held: set[int] = set()  # claimed, outcome not yet written
        self._fetcher: Fetcher | None = None
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
        store = self._queue.store
        await store.check_schema()
        for name, limit in self._queue_limits.items():  # a limit not given stays as it was
            await store.set_queue_limits(queue=name, limit=limit, keep_unset=True)
        self._finished.clear()
        self._hurry.clear()
        completer = Completer(
            store,
            self.id,
            default_max_attempts=max_attempts(self._defaults.max_retries),
            on_written=self._written,
        )
        metrics_server = None
        if self._metrics_port is not None:
            from pgqueue.worker.metrics import MetricsServer, WorkerMetrics  # prometheus_client

            self._metrics = WorkerMetrics(store, queues, running_jobs=lambda: len(self._active))
            metrics_server = MetricsServer(self._metrics, self._metrics_host, self._metrics_port)
        fetcher = self._fetcher = self._build_fetcher(queues, job_types, completer)
        if self._stop_requested:  # stop() came while this run was starting: claim nothing
            fetcher.stop()
        listener = (
            Listener(store, queues, self._heartbeat_interval, fetcher.nudge, self._cancel)
            if self._listen
            else None
        )
        heartbeat = Heartbeat(
            store,
            self.id,
            queues,
            self._concurrency,
            interval=self._heartbeat_interval,
            lease=self._heartbeat_timeout,
            watch=LoopWatch(asyncio.get_running_loop(), hung_after=self._blocked_loop_timeout),
        )
        scheduler = Scheduler(
            store, declared=self._registry.schedules(), poll_interval=self._poll_interval
        )
        maintenance = Maintenance(
            store,
            worker_id=self.id,
            heartbeat_timeout=self._heartbeat_timeout,
            interval=self._heartbeat_interval,
            default_max_attempts=max_attempts(self._defaults.max_retries),
            held_ids=lambda: self._held,
            on_released=fetcher.nudge,
            on_rescued=self._rescued,
            on_cancelled=self._cancel,
            prune=None if self._retention is None else self._prune,
        )
        with self._signal_handlers():  # through shutdown too, so a second signal can hurry it
            try:
                if metrics_server is not None:
                    await metrics_server.start()
                if listener is not None:
                    await listener.start()
                completer.start()
                await heartbeat.start()  # registered last: a worker row means it is listening
                self._started.set()
                maintenance.start()
                await scheduler.start()
                await fetcher.run()
            except asyncio.CancelledError:
                fetcher.stop()  # no buffered job may start while the running ones are cancelled
                self._hurry.set()  # cancelled from outside: no grace period
                raise
            finally:
                try:
                    await scheduler.stop()
                    await maintenance.stop()
                    await self._shutdown(completer)
                    if listener is not None:
                        await listener.close()
                    await heartbeat.stop()
                    if metrics_server is not None:
                        await metrics_server.stop()
                finally:  # stop() waits on this, whatever went wrong above
                    self._fetcher = None
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
        queues = self._queues or sorted(
            {c.job_options.queue for c in self._registry.classes()}
            | {s.queue for s in self._registry.schedules()}
        )
        log.info(
            "worker %s: queues %s, concurrency %s, %s, job types %s",
            self.id,
            ",".join(queues),
            self._concurrency,
            "woken by LISTEN" if self._listen else "polling only",
            ", ".join(job_types),
        )
        return queues, job_types

    def _build_fetcher(
        self,
        queues: list[str],
        job_types: list[str],
        completer: Completer,
    ) -> Fetcher:
        executor = JobExecutor(
            registry=self._registry,
            store=self._queue.store,
            completer=completer,
            worker_id=self.id,
            defaults=self._defaults,
            error_hooks=self._error_hooks,
            observer=self._metrics,
        )
        return Fetcher(
            self._queue.store,
            worker_id=self.id,
            queues=queues,
            job_types=job_types,
            poll_interval=self._poll_interval,
            prefetch=self._prefetch,
            free_slots=lambda: self._concurrency - len(self._active),
            on_claimed=lambda jobs: self._held.update(job.id for job in jobs),
            start_job=lambda job: self._start(executor, job),
        )

    async def stop(self) -> None:
        """Claim nothing more, let running jobs finish within the grace period, release the rest.

        Called before ``run()`` has begun (say, just after ``create_task(worker.run())``), it
        makes that run stop as soon as it has started: it registers, claims nothing, and
        returns."""
        self._stop_requested = True
        if self._fetcher is not None:
            log.info(
                "worker %s stopping: waiting up to %ss for %s running jobs",
                self.id,
                self._grace.total_seconds(),
                len(self._active),
            )
            self._fetcher.stop()
        await self._finished.wait()

    def _start(self, executor: JobExecutor, job: ClaimedJob) -> None:
        # Named for the operator: the loop watch reports the task that blocks the loop by its name.
        task = asyncio.create_task(executor.run(job), name=f"job {job.id} ({job.job_type})")
        self._active[job.id] = task
        task.add_done_callback(lambda t: self._finish(job.id, t))

    def _finish(self, job_id: int, task: asyncio.Task[None]) -> None:
        del self._active[job_id]
        if task.cancelled():
            self._held.discard(job_id)  # cancelled (its row says so) or released at shutdown
        elif task.exception() is not None:
            log.error(
                "job %s: its outcome could not be recorded; it stays running until released",
                job_id,
                exc_info=task.exception(),
                extra={"job_id": job_id},
            )
        if self._fetcher is not None:
            self._fetcher.slot_freed()

    async def _prune(self) -> None:
        # A few batches per round, so a large backlog never keeps maintenance busy for long.
        deleted = await self._queue.prune(self._retention, batch_size=_PRUNE_BATCH, max_batches=10)
        if any(deleted.values()):
            log.info("pruned finished jobs: %s", {str(s): n for s, n in deleted.items() if n})

    def _rescued(self, count: int) -> None:
        if self._metrics is not None:
            self._metrics.jobs_rescued(count)

    def _written(self, job_ids: Iterable[int]) -> None:
        self._held.difference_update(job_ids)

    def _cancel(self, job_id: int) -> None:
        if self._fetcher is not None and self._fetcher.drop(job_id):
            self._held.discard(job_id)  # claimed but not started: its row says cancelled
            return
        task = self._active.get(job_id)
        if task is not None:
            log.info(
                "job %s was cancelled while running: stopping it", job_id, extra={"job_id": job_id}
            )
            task.cancel()

    async def _shutdown(self, completer: Completer) -> None:
        await self._wait_for_running_jobs()
        unfinished = list(self._active.values())
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        try:
            await completer.stop()
            released = await self._queue.store.release_worker_jobs(worker_id=self.id)
        except Exception:
            log.exception("worker %s: could not record the last outcomes on shutdown", self.id)
            return
        self._held.clear()
        if released:
            log.info(
                "worker %s released %s unfinished jobs back to pending: %s",
                self.id,
                len(released),
                released,
            )

    async def _wait_for_running_jobs(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace.total_seconds()
        hurry = asyncio.create_task(self._hurry.wait())
        try:
            while self._active and not self._hurry.is_set() and loop.time() < deadline:
                await asyncio.wait(
                    [*self._active.values(), hurry],
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
        if self._fetcher is not None and not self._fetcher.stopping:
            log.info(
                "%s: stopping gracefully (up to %ss); send it again to stop now",
                name,
                self._grace.total_seconds(),
            )
            self._fetcher.stop()
        else:
            log.info("%s again: stopping now, releasing running jobs", name)
            self._hurry.set()


def _default_prefetch(concurrency: int) -> int:
    """A quarter of the slots, at most 50: enough that a freed slot rarely waits on a claim,
    few enough that jobs do not sit claimed here while another worker could run them (or a
    more urgent job, enqueued later, waits behind them). None below 4 slots."""
    return min(50, concurrency // 4)


def check_heartbeat(interval: timedelta, timeout: timedelta) -> None:
    """A lease must outlast the pause between two beats."""
    if timeout <= interval:
        raise ValueError(
            f"heartbeat_timeout ({timeout.total_seconds():g}s) must be longer than "
            f"heartbeat_interval ({interval.total_seconds():g}s)"
        )


def _check_count(what: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{what} must be a whole number of at least {least}, got {value!r}")


def _positive(value: timedelta | float, what: str, *, allow_zero: bool = False) -> timedelta:
    delta = as_timedelta(value, what)
    assert delta is not None
    if delta == timedelta(0) and not allow_zero:
        raise ValueError(f"{what} must be positive")
    return delta
