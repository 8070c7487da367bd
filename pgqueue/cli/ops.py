"""Operator commands: ``pgqueue migrate``."""

from __future__ import annotations

import asyncio
import logging

import click

from pgqueue import migrate as migrations
from pgqueue.cli import configure_logging, dsn_option
from pgqueue.settings import redact_dsn, resolve_dsn

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
    if print_sql:
        click.echo(migrations.upgrade_sql())
        return
    configure_logging("info")
    resolved = resolve_dsn(dsn)
    asyncio.run(migrations.upgrade(resolved.dsn))
    click.echo(f"pgqueue schema is up to date on {redact_dsn(resolved.dsn)}")
