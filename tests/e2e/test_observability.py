"""What operators watch: Prometheus metrics scraped from a running ``pgqueue work`` process, and
its JSON log lines, after a known set of jobs."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgqueue import Job, Queue
from tests.e2e.conftest import WorkerProcesses
from tests.factories import count, eventually, free_ports
from tests.jobs import Echo, Flaky, LogsAndFails, Permanent, QueueLimitHold

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def http(method: str, url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def scrape(port: int) -> Samples:
    """Every sample of /metrics by name and labels, once the server answers."""

    async def attempt() -> str | None:
        try:
            status, body = await asyncio.to_thread(http, "GET", f"http://127.0.0.1:{port}/metrics")
        except OSError:
            return None  # not listening yet
        assert status == 200
        return body

    body = await eventually(attempt, until=lambda text: text is not None)
    assert body is not None
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def of(job: type[Job], queue: str = "tests") -> tuple[tuple[str, str], ...]:
    """The labels of a job class's samples, as ``scrape`` keys them."""
    return (("job_type", job.job_options.name), ("queue", queue))


async def test_metrics_count_the_jobs_a_worker_ran_and_read_queue_depth_from_the_database(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses
) -> None:
    await queue.pause_queue("held")
    for _ in range(3):
        await queue.enqueue(Echo(text="waits"), queue="held")
    for n in range(3):
        await queue.enqueue(Echo(text=str(n)))
    await queue.enqueue(Flaky(succeed_on=2), backoff=timedelta(milliseconds=10))
    await queue.enqueue(Permanent())
    port = free_ports()
    worker = workers.start("--queues", "tests,held", "--metrics-port", str(port))

    await eventually(lambda: count(db, "completed"), until=lambda n: n == 4)
    await eventually(lambda: count(db, "failed"), until=lambda n: n == 1)
    samples = await scrape(port)

    assert samples[("pgqueue_jobs_started_total", of(Echo))] == 3
    assert samples[("pgqueue_jobs_started_total", of(Flaky))] == 2
    assert samples[("pgqueue_jobs_started_total", of(Permanent))] == 1
    assert samples[("pgqueue_jobs_completed_total", of(Echo))] == 3
    assert samples[("pgqueue_jobs_completed_total", of(Flaky))] == 1
    assert samples[("pgqueue_jobs_retried_total", of(Flaky))] == 1
    assert samples[("pgqueue_jobs_failed_total", of(Permanent))] == 1
    assert ("pgqueue_jobs_failed_total", of(Echo)) not in samples
    assert samples[("pgqueue_job_duration_seconds_count", of(Echo))] == 3
    assert samples[("pgqueue_job_duration_seconds_count", of(Flaky))] == 2
    assert (
        samples[("pgqueue_job_duration_seconds_bucket", tuple(sorted((*of(Echo), ("le", "+Inf")))))]
        == 3
    )
    assert samples[("pgqueue_queue_depth", (("queue", "held"),))] == 3
    assert samples[("pgqueue_queue_depth", (("queue", "tests"),))] == 0
    assert samples[("pgqueue_queue_oldest_pending_age_seconds", (("queue", "held"),))] > 0
    assert samples[("pgqueue_queue_oldest_pending_age_seconds", (("queue", "tests"),))] == 0
    assert samples[("pgqueue_worker_running_jobs", ())] == 0
    assert samples[("pgqueue_jobs_rescued_total", ())] == 0

    # Depth is read at each scrape: resuming the queue empties it.
    await queue.resume_queue("held")
    await eventually(lambda: count(db, "completed"), until=lambda n: n == 7)
    assert (await scrape(port))[("pgqueue_queue_depth", (("queue", "held"),))] == 0

    assert http("GET", f"http://127.0.0.1:{port}/other")[0] == 404
    assert http("POST", f"http://127.0.0.1:{port}/metrics")[0] == 405
    worker.send_signal(signal.SIGTERM)
    assert await workers.wait(worker) == 0


async def test_json_logs_name_the_job_on_every_line_about_it_including_the_handlers_own(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses
) -> None:
    job_id = await queue.enqueue(LogsAndFails(word="hello"), backoff=timedelta(milliseconds=10))
    worker = workers.start("--queues", "tests", "--log-format", "json")

    await eventually(lambda: count(db, "completed"), until=lambda n: n == 1)
    worker.send_signal(signal.SIGTERM)
    assert await workers.wait(worker) == 0

    entries = [json.loads(line) for line in workers.log_of(worker).splitlines()]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    about_the_job = [e for e in entries if "job_id" in e]
    handler_lines = [e for e in about_the_job if e["logger"] == "tests.app"]
    assert [(e["message"], e["attempt"]) for e in handler_lines] == [
        ("handling hello", 1),
        ("handling hello", 2),
    ]
    failure = next(e for e in about_the_job if "first attempts fail" in e["message"])
    assert failure["level"] == "warning"
    worker_id = await db.fetchval("SELECT worker_id::text FROM pgqueue.jobs WHERE id = $1", job_id)
    for entry in about_the_job:
        assert entry["job_id"] == job_id
        assert entry["queue"] == "tests"
        assert entry["job_type"] == LogsAndFails.job_options.name
        assert entry["worker_id"] == worker_id
    mentions = re.compile(rf"\bjob {job_id}\b")  # how pgqueue names a job in a message
    assert not [e for e in entries if "job_id" not in e and mentions.search(e["message"])]


async def test_with_workers_2_each_worker_serves_its_metrics_on_its_own_port(
    queue: Queue, db: asyncpg.Connection, workers: WorkerProcesses, tmp_path: Path
) -> None:
    port = free_ports(2)
    release = tmp_path / "release"
    hold = QueueLimitHold(log_path=str(tmp_path / "hold.log"), release_path=str(release))
    # 20 held jobs: one worker claims at most 10 + 2 prefetched, so both run some.
    await queue.enqueue_batch([hold] * 20, queue="tests")
    supervisor = workers.start("--queues", "tests", "--workers", "2", "--metrics-port", str(port))

    async def running_on_each_port() -> list[float]:
        return [(await scrape(p))[("pgqueue_worker_running_jobs", ())] for p in (port, port + 1)]

    await eventually(running_on_each_port, until=lambda running: min(running) > 0)
    release.touch()
    await eventually(lambda: count(db, "completed"), until=lambda n: n == 20)
    started = [
        (await scrape(p))[("pgqueue_jobs_started_total", of(QueueLimitHold))]
        for p in (port, port + 1)
    ]
    assert sum(started) == 20
    assert min(started) > 0
    supervisor.send_signal(signal.SIGTERM)
    assert await workers.wait(supervisor) == 0


@pytest.mark.parametrize("port", [-1, 65536])
async def test_a_metrics_port_out_of_range_is_refused(queue: Queue, port: int) -> None:
    from pgqueue import Worker

    with pytest.raises(ValueError, match="metrics_port must be from 0 to 65535"):
        Worker(queue, metrics_port=port)
