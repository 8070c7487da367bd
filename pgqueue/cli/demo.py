"""``pgqueue demo``: migrate, enqueue a few jobs, run a worker until they settle, show the story."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import click

from pgqueue.cli.options import dsn_option
from pgqueue.dsn import redact_dsn
from pgqueue.job import Job
from pgqueue.logs import configure_logging
from pgqueue.queue import Queue
from pgqueue.records import JobRecord, JobStatus
from pgqueue.retry import Backoff
from pgqueue.settings import resolve_dsn
from pgqueue.worker import Worker

_SETTLE_TIMEOUT = 60.0


@click.command()
@dsn_option
def demo(dsn: str | None) -> None:
    """Show pgqueue at work: a delayed job, a retried one, one that ends in the dead letter queue.

    Uses the configured database (--dsn, PGQUEUE_DSN, DATABASE_URL) or else the embedded one,
    and its own queue, pgqueue-demo.
    """
    configure_logging("warning")
    logging.getLogger("pgqueue").setLevel(logging.INFO)  # says where the database is
    logging.getLogger("pgqueue.worker").setLevel(logging.ERROR)  # the demo tells the story
    asyncio.run(_demo(dsn))


async def _demo(dsn: str | None) -> None:
    from pgqueue import migrate as migrations  # not at the top: see the migrate command
    from pgqueue.cli.demo_jobs import DEMO_QUEUE, ChargeCard, FlakyUpload, Greet, Thumbnail

    resolved = resolve_dsn(dsn)
    where = "embedded PostgreSQL" if resolved.source == "embedded" else redact_dsn(resolved.dsn)
    click.echo(f"database: {where}")
    await migrations.upgrade(resolved.dsn)
    click.echo("schema:   migrated\n")
    async with Queue.connect(resolved.dsn) as queue:
        plan: list[tuple[Job, dict[str, Any], str]] = [
            (Greet(name="Ada"), {}, "runs at once"),
            (Thumbnail(width=1920, height=1080), {}, "sync handler, run in a thread"),
            (Greet(name="Grace"), {"delay": 3}, "delayed by 3 s"),
            (FlakyUpload(path="report.pdf"), {}, "fails once, then succeeds"),
            (ChargeCard(card="4000-0000-0000-0002"), {}, "fails every time, max_retries=1"),
        ]
        ids = []
        click.echo("enqueued:")
        for job, options, note in plan:
            job_id = await queue.enqueue(job, **options)
            ids.append(job_id)
            click.echo(f"  #{job_id:<5} {job.job_options.name:<18} {note}")
        click.echo("\nworker started; what happens:")
        worker = Worker(
            queue,
            queues=[DEMO_QUEUE],
            concurrency=4,
            poll_interval=1,
            backoff=Backoff(base=timedelta(seconds=1)),
        )
        task = asyncio.create_task(worker.run())
        try:
            records = await _narrate(queue, ids)
        finally:
            await worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        _print_summary(records)
        stats = await queue.stats(DEMO_QUEUE)
        click.echo(
            f"\nqueue {DEMO_QUEUE}: pending {stats.pending}, scheduled {stats.scheduled}, "
            f"running {stats.running}, completed {stats.completed}, failed {stats.failed}, "
            f"cancelled {stats.cancelled}"
        )


async def _narrate(queue: Queue, ids: Sequence[int]) -> list[JobRecord]:
    """Print each job's state changes as they happen; return the records once all settled."""
    start = time.monotonic()
    seen: dict[int, tuple[JobStatus, int]] = {}
    while True:
        records = [await queue.get_job(job_id) for job_id in ids]
        for record in records:
            state = (record.status, record.attempts)
            if seen.get(record.id) != state:
                seen[record.id] = state
                line = _describe(record)
                if line:
                    click.echo(f"  [+{time.monotonic() - start:4.1f}s] #{record.id:<5} {line}")
        if all(record.status.is_finished for record in records):
            return records
        if time.monotonic() - start > _SETTLE_TIMEOUT:
            raise click.ClickException(f"jobs did not settle within {_SETTLE_TIMEOUT:g}s")
        await asyncio.sleep(0.05)


def _describe(record: JobRecord) -> str | None:
    if record.status is JobStatus.RUNNING:
        return f"{record.job_type} attempt {record.attempts} running"
    if record.status is JobStatus.COMPLETED:
        return f"{record.job_type} completed -> {record.result!r}"
    if record.status is JobStatus.FAILED:
        return f"{record.job_type} failed for good (dead letter queue): {record.last_error}"
    if record.status is JobStatus.PENDING and record.attempts:
        return f"{record.job_type} attempt {record.attempts} failed: {record.last_error}; retrying"
    return None


def _print_summary(records: Sequence[JobRecord]) -> None:
    click.echo(f"\n{'id':<6} {'job type':<18} {'status':<10} {'attempts':<8} result / last error")
    for r in records:
        outcome = r.result if r.status is JobStatus.COMPLETED else r.last_error
        click.echo(f"{r.id:<6} {r.job_type:<18} {r.status.value:<10} {r.attempts:<8} {outcome!r}")
