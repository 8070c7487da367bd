"""The ``pgqueue`` command. Exit codes: 0 ok, 1 runtime failure, 2 bad usage.

Expected failures (an unreachable database, a missing schema, bad input) print one line on
stderr, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import asyncpg
import click

from pgqueue.errors import PgQueueError

log = logging.getLogger("pgqueue")


class PgQueueGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PgQueueError as error:
            _fail(str(error))
        except asyncpg.PostgresError as error:
            _fail(f"the database refused: {error}")
        except OSError as error:  # connection refused, unknown host, socket missing
            _fail(
                f"cannot reach the database ({error}): check that PostgreSQL runs there and that "
                "--dsn, PGQUEUE_DSN or DATABASE_URL point to it"
            )


def _fail(message: str) -> None:
    click.echo(f"pgqueue: error: {message}", err=True)
    sys.exit(1)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


dsn_option = click.option(
    "--dsn",
    metavar="DSN",
    help="PostgreSQL URL. Default: PGQUEUE_DSN, then DATABASE_URL, else an embedded server.",
)

log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="How much to log on stderr.",
)


@click.group(cls=PgQueueGroup)
@click.version_option(package_name="pgqueue")
def main() -> None:
    """pgqueue: a PostgreSQL-native durable job queue."""


def _register_commands() -> None:
    from pgqueue.cli.demo import demo
    from pgqueue.cli.ops import migrate
    from pgqueue.cli.work import work

    for command in (demo, migrate, work):
        main.add_command(command)


_register_commands()
