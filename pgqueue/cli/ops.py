"""Operator commands: ``pgqueue migrate``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import click

from pgqueue.cli.options import Duration, dsn_option, with_queue
from pgqueue.cli.output import emit_json, json_option
from pgqueue.dsn import redact_dsn
from pgqueue.logs import configure_logging
from pgqueue.retention import Retention
from pgqueue.settings import resolve_dsn

log = logging.getLogger("pgqueue")


@click.command()
@click.option(
    "--sql",
    "print_sql",
    is_flag=True,
    help="Print the SQL instead of running it (for a DBA to review and apply).",
)
@dsn_option
def migrate(print_sql: bool, dsn: str | None) -> None:
    """Create or upgrade the pgqueue schema (idempotent; safe to run on every deploy)."""
    # Imported here: alembic and SQLAlchemy weigh about 25 MiB, which every `pgqueue work`
    # process would otherwise carry, since importing the CLI imports each command's module.
    from pgqueue import migrate as migrations

    if print_sql:
        click.echo(migrations.upgrade_sql())
        return
    configure_logging("info")
    resolved = resolve_dsn(dsn)
    asyncio.run(migrations.upgrade(resolved.dsn))
    click.echo(f"pgqueue schema is up to date on {redact_dsn(resolved.dsn)}")


def retention_options(command: Callable[..., None]) -> Callable[..., None]:
    """--keep-completed/--keep-failed/--keep-cancelled, shared by ``prune`` and ``work``."""
    defaults = Retention()
    for status in ("cancelled", "failed", "completed"):
        days = getattr(defaults, status).days  # the defaults are whole days
        command = click.option(
            f"--keep-{status}",
            type=Duration(),
            default=f"{days}d",
            show_default=True,
            help=f"Keep {status} jobs this long after they finished (0: forever).",
        )(command)
    return command


def retention_from(options: dict[str, Any]) -> Retention:
    return Retention(
        completed=options.pop("keep_completed"),
        failed=options.pop("keep_failed"),
        cancelled=options.pop("keep_cancelled"),
    )


@click.command()
@retention_options
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows deleted per statement (small batches never hold long locks).",
)
@dsn_option
@json_option
def prune(batch_size: int, dsn: str | None, as_json: bool, **keep: Any) -> None:
    """Delete finished jobs older than their retention now (workers also do it as they run)."""
    retention = retention_from(keep)
    deleted = with_queue(dsn, lambda q: q.prune(retention, batch_size=batch_size))
    if as_json:
        emit_json({str(status): count for status, count in deleted.items()})
        return
    summary = ", ".join(f"{count} {status}" for status, count in deleted.items()) or "nothing"
    click.echo(f"pruned {summary}")
