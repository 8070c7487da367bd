"""pgqueue, measured by ``pgqueue bench``'s own workloads (``pgqueue.bench.run``), so the peer
comparison and ``pgqueue bench`` report the same thing.

- Schema: ``pgqueue.migrate.upgrade(dsn)``.
- Enqueue: ``Queue.connect(dsn, max_size=1)``; ``queue.enqueue(Noop())`` per job;
  ``queue.enqueue_batch([...])`` of 1,000 jobs a call.
- Workers: N separate ``pgqueue work --app pgqueue.bench.jobs --concurrency 100`` processes
  started side by side, as the peers' are (peak RSS is the largest of them); the latency
  worker runs with concurrency 10 and is measured after it registered and had 1.5 s to settle.
  asyncio's own loop on both sides, as the ``pgqueue`` command runs.
- Processing is timed as for the peers: from starting the workers until every job completed,
  the database polled only once every handler has started.
"""

from __future__ import annotations

from typing import Any

from benchmarks.peer import WORKER_PROCESSES, Result, Settings
from pgqueue import migrate
from pgqueue.bench import run as pgqueue_bench

CONCURRENCY = pgqueue_bench.Settings().concurrency  # ``pgqueue bench``'s default


class PgqueueSystem:
    uses_uvloop = False

    def configuration(self) -> dict[str, Any]:
        return {
            "summary": f"pgqueue bench's workloads; pgqueue work --concurrency {CONCURRENCY}",
            "install": "pgqueue.migrate.upgrade(dsn)",
            "enqueue": "Queue.connect(dsn, max_size=1); await queue.enqueue(Noop())",
            "batch_enqueue": "queue.enqueue_batch([Noop(), ...]), 1000 per call",
            "worker": (
                f"N x pgqueue work --app pgqueue.bench.jobs --concurrency {CONCURRENCY} "
                "(N separate processes); latency: concurrency 10"
            ),
            "wake_up": "pgqueue's LISTEN/NOTIFY",
            "event_loop": "asyncio (client and workers, as the pgqueue command)",
            "measured_by": "pgqueue.bench.run (single_enqueue, batch_enqueue, process, latency)",
        }

    async def install(self, dsn: str) -> None:
        await migrate.upgrade(dsn)

    async def run(self, workload: str, dsn: str, settings: Settings) -> Result:
        if workload == "single_enqueue":
            result = await pgqueue_bench.single_enqueue(dsn, settings.jobs)
        elif workload == "batch_enqueue":
            result = await pgqueue_bench.batch_enqueue(dsn, settings.jobs)
        elif workload == "latency":
            result = await pgqueue_bench.latency(dsn, settings.latency_samples)
        else:
            result = await pgqueue_bench.process(
                dsn,
                jobs=settings.jobs,
                worker_processes=WORKER_PROCESSES[workload],
                concurrency=CONCURRENCY,
            )
        details = dict(result.details)
        if result.unit == "jobs/s":
            details["seconds"] = round(settings.jobs / result.value, 4)
        return Result(result.workload, result.value, result.unit, details)
