"""Operator commands on queues: pause, resume, and cluster-wide limits."""

from __future__ import annotations

import click

from pgqueue.cli.options import dsn_option, with_queue
from pgqueue.limits import QueueLimit

queue_argument = click.argument("queue_name", metavar="QUEUE")


@click.command()
@queue_argument
@dsn_option
def pause(queue_name: str, dsn: str | None) -> None:
    """Stop every worker from claiming jobs of QUEUE (running jobs finish; enqueueing goes on)."""
    with_queue(dsn, lambda queue: queue.pause_queue(queue_name))
    click.echo(f"queue {queue_name} paused")


@click.command()
@queue_argument
@dsn_option
def resume(queue_name: str, dsn: str | None) -> None:
    """Let workers claim jobs of QUEUE again."""
    with_queue(dsn, lambda queue: queue.resume_queue(queue_name))
    click.echo(f"queue {queue_name} resumed")


@click.command()
@queue_argument
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=2**31 - 1),
    help="At most this many jobs of QUEUE running at once, across all workers.",
)
@click.option(
    "--rate",
    metavar="N/PERIOD",
    help="At most N jobs of QUEUE started per PERIOD, e.g. 100/1m (units ms, s, m, h, d).",
)
@dsn_option
def limit(queue_name: str, concurrency: int | None, rate: str | None, dsn: str | None) -> None:
    """Set QUEUE's cluster-wide limits; a limit not given is removed (no options: none)."""
    try:
        rated = QueueLimit() if rate is None else QueueLimit.parse_rate(rate)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--rate") from error
    with_queue(
        dsn,
        lambda queue: queue.set_queue_limits(
            queue_name, concurrency=concurrency, rate=rated.rate, per=rated.per
        ),
    )
    parts = [f"{concurrency} running" if concurrency else None, f"{rate} started" if rate else None]
    described = ", ".join(part for part in parts if part) or "no limits"
    click.echo(f"queue {queue_name}: {described}")
