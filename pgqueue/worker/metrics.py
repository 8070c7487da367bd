"""Prometheus metrics of one worker process, served at ``http://HOST:PORT/metrics``.

Counters and the duration histogram are kept as jobs run; the queue depth and the oldest
pending job's age are read from the database (through the claimable index) when scraped, so
an idle worker costs nothing between scrapes. Each worker has a registry of its own:
several workers in one process never mix their counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from pgqueue.rows import ClaimedJob
from pgqueue.store import JobStore
from pgqueue.worker.executor import Outcome

log = logging.getLogger("pgqueue.worker")

# Seconds: from no-op jobs to ones that run for many minutes.
_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
# The outcomes counted, with their help texts ("lost" is counted by the worker that won).
_ENDED = {
    "completed": "Jobs completed.",
    "failed": "Jobs that failed for good (into the dead letter queue).",
    "retried": "Failed attempts that will be retried.",
    "snoozed": "Attempts that asked to run later (Retry).",
}
_READ_LIMIT = 16 * 1024  # bytes of request line and headers a scrape may send


class WorkerMetrics:
    def __init__(
        self, store: JobStore, queues: Sequence[str], running_jobs: Callable[[], int]
    ) -> None:
        self._store = store
        self._queues = list(queues)
        self.registry = CollectorRegistry()
        labels = ("queue", "job_type")
        self._started = Counter(
            "pgqueue_jobs_started", "Attempts this worker started.", labels, registry=self.registry
        )
        self._ended = {
            outcome: Counter(f"pgqueue_jobs_{outcome}", text, labels, registry=self.registry)
            for outcome, text in _ENDED.items()
        }
        self._duration = Histogram(
            "pgqueue_job_duration_seconds",
            "Time an attempt took, from its start to its outcome.",
            labels,
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self._rescued = Counter(
            "pgqueue_jobs_rescued",
            "Jobs of dead workers that this worker put back to pending.",
            registry=self.registry,
        )
        Gauge(
            "pgqueue_worker_running_jobs", "Jobs this worker is running.", registry=self.registry
        ).set_function(running_jobs)
        self._depth = Gauge(
            "pgqueue_queue_depth",
            "Jobs ready to run now (pending, due and not waiting on parents), read at scrape.",
            ["queue"],
            registry=self.registry,
        )
        self._oldest = Gauge(
            "pgqueue_queue_oldest_pending_age_seconds",
            "How long the oldest ready job has been due (0 when none is), read at scrape.",
            ["queue"],
            registry=self.registry,
        )
        self._scrape_lock = asyncio.Lock()

    def job_started(self, job: ClaimedJob) -> None:
        self._started.labels(job.queue, job.job_type).inc()

    def job_ended(self, job: ClaimedJob, outcome: Outcome, seconds: float) -> None:
        if outcome not in _ENDED:  # lost: another worker owns the job now and counts it
            return
        self._ended[outcome].labels(job.queue, job.job_type).inc()
        self._duration.labels(job.queue, job.job_type).observe(seconds)

    def jobs_rescued(self, count: int) -> None:
        self._rescued.inc(count)

    async def exposition(self) -> bytes:
        """The metrics in Prometheus' text format, queue gauges read from the database now."""
        async with self._scrape_lock:
            try:
                for depth in await self._store.queue_depths(queues=self._queues):
                    self._depth.labels(depth.queue).set(depth.ready)
                    self._oldest.labels(depth.queue).set(depth.oldest_age_seconds)
            except Exception as error:  # the counters are still worth serving
                log.warning("metrics: could not read the queue depths (%s)", error)
            return generate_latest(self.registry)


class MetricsServer:
    """A minimal HTTP/1.1 server for ``GET /metrics`` on the worker's own event loop."""

    def __init__(self, metrics: WorkerMetrics, host: str, port: int) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=_READ_LIMIT
        )
        log.info("metrics at http://%s:%s/metrics", self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            path = target.split("?", 1)[0]
            if method != "GET":
                status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
            elif path != "/metrics":
                status, body, kind = "404 Not Found", b"see /metrics\n", "text/plain"
            else:
                status, body, kind = "200 OK", await self._metrics.exposition(), CONTENT_TYPE_LATEST
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
                + body
            )
            await writer.drain()
        except (
            ValueError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
        ):
            pass  # a malformed, oversized or abandoned request gets no answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
