"""Operator commands on jobs and queues. Each parses, makes one API call, and prints."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import click

from pgqueue.cli.options import Duration, dsn_option, with_queue
from pgqueue.cli.output import emit_json, emit_table, json_option
from pgqueue.errors import PgQueueError
from pgqueue.queue import Queue
from pgqueue.records import JobStatus, QueueOverview
from pgqueue.registry import load_app, registry


def is_terminal() -> bool:
    """Whether someone is at the keyboard to answer a confirmation."""
    return sys.stdin.isatty()


job_ids_argument = click.argument("job_ids", metavar="JOB_ID...", nargs=-1, type=int)


@click.command("list")
@dsn_option
@json_option
def list_queues(dsn: str | None, as_json: bool) -> None:
    """Every queue: jobs by state (sched: due later; blocked: waiting on parents), how long the
    oldest due job has waited, jobs done in the last minute, and the queue's cluster-wide limits.
    Paused queues say so."""
    overview = with_queue(dsn, lambda queue: queue.queue_overview())
    if as_json:
        emit_json(overview)
        return
    # Short labels so the table fits 80 columns; --json has the full field names.
    rows = [
        {
            "queue": f"{r.queue} (paused)" if r.paused else r.queue,
            "pending": r.pending,
            "sched": r.scheduled,
            "running": r.running,
            "done": r.completed,
            "failed": r.failed,
            "cancel": r.cancelled,
            "blocked": r.blocked,
            "oldest": _age(r.oldest_pending_seconds),
            "1min": r.completed_last_minute,
            "limits": _limits(r),
        }
        for r in overview
    ]
    columns = ["queue", "pending", "sched", "running", "done", "failed", "cancel", "blocked"]
    columns += ["oldest", "1min", "limits"]
    emit_table(rows, columns, title="queues")


def _limits(overview: QueueOverview) -> str | None:
    """``3 running, 100/60s`` for a limited queue."""
    parts = []
    if overview.concurrency_limit is not None:
        parts.append(f"{overview.concurrency_limit} running")
    if overview.rate_limit is not None and overview.rate_period is not None:
        parts.append(f"{overview.rate_limit}/{overview.rate_period.total_seconds():g}s")
    return ", ".join(parts) or None


def _age(seconds: float | None) -> str | None:
    """How long the oldest due job has waited, in the largest whole unit."""
    if seconds is None:
        return None
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.1f}s"


@click.command()
@click.option("--queue", help="Only this queue.")
@click.option("--job-type", help="Only this job type.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@dsn_option
@json_option
def dlq(
    queue: str | None, job_type: str | None, limit: int, dsn: str | None, as_json: bool
) -> None:
    """The dead letter queue: failed jobs, newest failure first, with their last error."""
    failed = with_queue(dsn, lambda q: q.failed_jobs(queue=queue, job_type=job_type, limit=limit))
    if as_json:
        emit_json(failed)
        return
    rows = [
        {
            "id": j.id,
            "queue": j.queue,
            "job_type": j.job_type,
            "attempts": j.attempts,
            "failed_at": j.finished_at,
            "last_error": j.last_error,
        }
        for j in failed
    ]
    emit_table(
        rows,
        ["id", "queue", "job_type", "attempts", "failed_at", "last_error"],
        title="failed jobs",
    )


@click.command()
@job_ids_argument
@click.option("--all-failed", is_flag=True, help="Every failed job (narrow with the options).")
@click.option("--queue", help="With --all-failed: only this queue.")
@click.option("--job-type", help="With --all-failed: only this job type.")
@dsn_option
def retry(
    job_ids: tuple[int, ...],
    all_failed: bool,
    queue: str | None,
    job_type: str | None,
    dsn: str | None,
) -> None:
    """Put failed or cancelled jobs back to pending with fresh attempts (history kept)."""
    if bool(job_ids) == all_failed:
        raise click.UsageError("give job ids, or --all-failed, but not both")
    if (queue or job_type) and not all_failed:
        raise click.UsageError("--queue and --job-type go with --all-failed")
    if all_failed:
        count = with_queue(dsn, lambda q: q.retry_failed(queue=queue, job_type=job_type))
        click.echo(f"retried {count} failed jobs")
        return

    async def retry_each(q: Queue) -> None:
        for job_id in job_ids:
            status = await q.get_job_status(job_id)  # JobNotFound: exit 1, saying so
            if not await q.retry(job_id):
                reason = (
                    "another live job holds its unique_key"
                    if status in (JobStatus.FAILED, JobStatus.CANCELLED)
                    else "only failed or cancelled jobs can be retried"
                )
                raise PgQueueError(f"job {job_id} is {status}: {reason}")
            click.echo(f"job {job_id} is pending again")

    with_queue(dsn, retry_each)


@click.command()
@click.argument("job_id", type=int)
@dsn_option
def cancel(job_id: int, dsn: str | None) -> None:
    """Cancel a job: a pending one never runs, a running one is stopped by its worker."""

    async def cancel_one(q: Queue) -> JobStatus:
        status = await q.get_job_status(job_id)  # JobNotFound: exit 1, saying so
        if not await q.cancel(job_id):
            raise PgQueueError(f"job {job_id} is already {status}: nothing to cancel")
        return status

    was = with_queue(dsn, cancel_one)
    click.echo(f"job {job_id} cancelled" + (" (its worker stops it)" if was == "running" else ""))


@click.command()
@click.argument("job_id", type=int)
@dsn_option
@json_option
def status(job_id: int, dsn: str | None, as_json: bool) -> None:
    """One job's full record, every failed attempt's error included."""
    record = with_queue(dsn, lambda q: q.get_job(job_id))
    if as_json:
        emit_json(record)
        return
    for field, value in record.model_dump(exclude={"errors"}).items():
        shown = json.dumps(value) if field in ("payload", "result", "trace_context") else value
        click.echo(f"{field:<13} {shown}")
    for error in record.errors:
        click.echo(f"\nattempt {error.attempt} failed at {error.at} on worker {error.worker_id}:")
        click.echo(error.traceback or f"{error.type}: {error.message}")


@click.command()
@click.argument("job_type")
@click.option("--payload", default="{}", show_default=True, help="The payload, a JSON object.")
@click.option("--delay", type=Duration(), help="Run after this long: 30s, 15m, 2h, 1d.")
@click.option("--queue", help="Default: the job class's queue, else 'default'.")
@click.option("--priority", type=int, help="Higher runs first. Default: 0.")
@click.option(
    "--unique-key",
    help="Insert nothing while a live job holds this key; print that job's id instead.",
)
@click.option(
    "--depends-on",
    "depends_on",
    type=int,
    multiple=True,
    metavar="JOB_ID",
    help="Run once this job has completed (repeat for several).",
)
@click.option(
    "--app",
    envvar="PGQUEUE_APP",
    metavar="MODULE",
    help="Module(s) defining the job classes (comma-separated; default: PGQUEUE_APP): JOB_TYPE "
    "must be one of their classes, which validates the payload before it is written.",
)
@click.option(
    "--unchecked",
    is_flag=True,
    help="With --app, enqueue a JOB_TYPE that the modules do not register (one only another "
    "service's workers know); only its worker validates the payload.",
)
@dsn_option
@json_option
def enqueue(
    job_type: str,
    payload: str,
    delay: timedelta | None,
    queue: str | None,
    priority: int | None,
    unique_key: str | None,
    depends_on: tuple[int, ...],
    app: str | None,
    unchecked: bool,
    dsn: str | None,
    as_json: bool,
) -> None:
    """Enqueue a job by its registered name, e.g. pgqueue enqueue send_email --payload '{...}'.

    With --app, an unknown JOB_TYPE is refused (exit 2) and the payload is validated by its
    class. Without --app nothing is checked here: the row is written as given, and the worker
    that runs it validates the payload.
    """
    try:
        values = json.loads(payload)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--payload") from error
    modules = [module.strip() for module in (app or "").split(",") if module.strip()]
    for module in modules:
        load_app(module)
    if modules and not unchecked:
        fix = f"check the name and --app {','.join(modules)}, or pass --unchecked to enqueue it "
        registry.require(job_type, fix=fix + "for workers that know it")
    job_id = with_queue(
        dsn,
        lambda q: q.enqueue_by_name(
            job_type,
            values,
            delay=delay,
            queue=queue,
            priority=priority,
            unique_key=unique_key,
            depends_on=depends_on or None,
        ),
    )
    if as_json:
        emit_json({"id": job_id, "existing": job_id.existing})
    elif job_id.existing:
        click.echo(f"job {job_id} already holds unique key {unique_key!r}: nothing enqueued")
    else:
        click.echo(f"enqueued job {job_id}")


@click.command()
@click.option("--queue", help="Only this queue. Default: every queue.")
@click.option(
    "--status",
    "status_",
    type=click.Choice(["pending", "failed", "completed"]),
    default="pending",
    show_default=True,
    help="Which jobs to delete.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@dsn_option
def clear(queue: str | None, status_: str, yes: bool, dsn: str | None) -> None:
    """Delete jobs of one status, of one queue or all; asks first on a terminal."""
    where = f"queue {queue}" if queue else "every queue"
    if not yes:
        if not is_terminal():
            raise click.UsageError("not a terminal: pass --yes to clear without confirmation")
        click.confirm(f"Delete the {status_} jobs of {where}?", abort=True)
    count = with_queue(dsn, lambda q: q.clear(queue, status=status_))
    click.echo(f"deleted {count} {status_} jobs of {where}")


@click.command()
@dsn_option
@json_option
def workers(dsn: str | None, as_json: bool) -> None:
    """Live workers: where they run, their queues, their last heartbeat, their lease (how long a
    silence makes them count as dead) and the jobs they hold."""
    found = with_queue(dsn, lambda q: q.workers())
    if as_json:
        emit_json(found)
        return
    rows = [{**w.model_dump(), "lease": _seconds(w.heartbeat_timeout)} for w in found]
    emit_table(
        rows,
        ["id", "host", "pid", "queues", "concurrency", "heartbeat_at", "lease", "job_ids"],
        title="workers",
    )


def _seconds(duration: timedelta | None) -> str | None:
    return None if duration is None else f"{duration.total_seconds():g}s"
