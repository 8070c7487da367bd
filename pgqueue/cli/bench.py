"""``pgqueue bench``: pgqueue's own throughput and latency on this machine."""

from __future__ import annotations

import asyncio
import json

import click

from pgqueue.bench import BACKLOG_STREAM_RATE, STREAM_RATE
from pgqueue.cli.options import dsn_option
from pgqueue.cli.output import emit_table, json_option
from pgqueue.settings import resolve_dsn


@click.command()
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="No-op jobs processed per run of the processing workload.",
)
@click.option(
    "--enqueue-jobs",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Jobs per enqueue workload (single and batch).",
)
@click.option(
    "--workers",
    "worker_processes",
    type=click.IntRange(min=1),
    multiple=True,
    default=(1, 2),
    show_default=True,
    help="Worker processes of a processing run; repeat for several runs.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Jobs run at once by each worker process.",
)
@click.option(
    "--latency-samples",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Enqueues timed from commit to the handler's start, on an idle worker.",
)
@click.option(
    "--finished-rows",
    type=click.IntRange(min=1),
    multiple=True,
    help="Also run the processing workload with one worker process on a table already holding "
    "this many completed jobs (inserted in SQL first, untimed: 45 to 80 s per 10 million on 2 "
    "cores); repeat for several runs.",
)
@click.option(
    "--prune-rows",
    type=click.IntRange(min=1),
    help="Also time claims (enqueue commit to handler start, for jobs streamed at "
    f"{STREAM_RATE}/s) before and while pruning deletes this many completed jobs that finished "
    "long ago.",
)
@click.option(
    "--scheduled-rows",
    type=click.IntRange(min=1),
    multiple=True,
    help="Also measure a worker (throughput; then, idle, wake-up p50/p99 and its database CPU "
    f"per job for a stream of {BACKLOG_STREAM_RATE} jobs/s) with this many jobs of its queue "
    "scheduled for tomorrow, against the same on an empty table; repeat for several runs.",
)
@click.option(
    "--paused-rows",
    type=click.IntRange(min=1),
    multiple=True,
    help="As --scheduled-rows, with this many due jobs in a paused queue the worker serves.",
)
@click.option(
    "--stream-seconds",
    type=click.FloatRange(min=0.5, max=3600),
    default=15.0,
    show_default=True,
    help="How long the stream to the idle workers of the --scheduled-rows and --paused-rows "
    "runs lasts (they and the empty table are streamed to side by side).",
)
@dsn_option
@json_option
def bench(
    jobs: int,
    enqueue_jobs: int,
    worker_processes: tuple[int, ...],
    concurrency: int,
    latency_samples: int,
    finished_rows: tuple[int, ...],
    prune_rows: int | None,
    scheduled_rows: tuple[int, ...],
    paused_rows: tuple[int, ...],
    stream_seconds: float,
    dsn: str | None,
    as_json: bool,
) -> None:
    """Measure pgqueue here: single and batch enqueue, processing throughput with one and two
    worker processes (and their peak memory), and idle wake-up latency; on request, processing
    among millions of finished jobs (--finished-rows), claim latency during a prune
    (--prune-rows), and what a backlog of jobs scheduled for later (--scheduled-rows) or waiting
    in a paused queue (--paused-rows) costs a worker.

    Each workload runs on a database of its own, created on the server (the user needs CREATEDB)
    and dropped afterwards; every figure is checked against the rows it claims.
    """
    # Imported here: the bench's job class would otherwise register in every `pgqueue work`,
    # whose workers would then claim the bench's queue too.
    from pgqueue.bench.run import Settings, run_all

    settings = Settings(
        jobs=jobs,
        enqueue_jobs=enqueue_jobs,
        worker_processes=worker_processes,
        concurrency=concurrency,
        latency_samples=latency_samples,
        finished_rows=finished_rows,
        prune_rows=prune_rows,
        scheduled_rows=scheduled_rows,
        paused_rows=paused_rows,
        stream_seconds=stream_seconds,
    )
    report = asyncio.run(run_all(resolve_dsn(dsn).dsn, settings))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = [
        {
            "workload": result["workload"],
            "value": f"{result['value']:,.1f}",
            "unit": result["unit"],
            "details": ", ".join(f"{k}={v}" for k, v in result["details"].items()),
        }
        for result in report["results"]
    ]
    emit_table(rows, ["workload", "value", "unit", "details"], title="pgqueue bench")
    machine = report["machine"]
    click.echo(
        f"{machine['date']}: {machine['cpus']} CPUs, PostgreSQL {machine['postgresql']}, "
        f"Python {machine['python']}, pgqueue {machine['pgqueue']}"
    )
