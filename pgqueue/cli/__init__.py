"""The ``pgqueue`` command. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input (a
malformed DSN, a job enqueue refuses).

Expected failures (an unreachable database, a missing schema, bad input) print one line on
stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any

import asyncpg
import click

from pgqueue.errors import InvalidDsn, InvalidJob, PgQueueError
from pgqueue.settings import database_address

_KILLED_BY_SIGPIPE = 141  # 128 + SIGPIPE (13): the status shells report for `yes | head -1`

log = logging.getLogger("pgqueue")


class PgQueueGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        arguments = list(ctx.args)  # the subcommand's own, before it parses them
        try:
            return super().invoke(ctx)
        except (InvalidDsn, InvalidJob) as error:  # bad input: usage, as click's own errors
            _fail(str(error), status=2)
        except PgQueueError as error:
            _fail(str(error))
        except asyncpg.ClientConfigurationError as error:  # what only asyncpg checks (certs)
            _fail(f"the connection settings are not usable: {error}".splitlines()[0], status=2)
        except asyncpg.PostgresError as error:
            _fail(f"the database refused: {error}")
        except BrokenPipeError:  # an OSError, but no database's: the reader went (| head -1)
            _end_at_closed_pipe()
        except OSError as error:  # connection refused, unknown host, socket missing
            where = database_address(_dsn_flag(arguments))
            _fail(
                f"cannot reach the database at {where} ({error}): check that PostgreSQL runs "
                "there and that --dsn, PGQUEUE_DSN or DATABASE_URL point to it"
            )


def _dsn_flag(arguments: list[str]) -> str | None:
    for index, argument in enumerate(arguments):
        if argument == "--dsn" and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith("--dsn="):
            return argument.removeprefix("--dsn=")
    return None


def _fail(message: str, *, status: int = 1) -> None:
    click.echo(f"pgqueue: error: {message}", err=True)
    sys.exit(status)


def _end_at_closed_pipe() -> None:
    """End quietly, as Unix tools do when their reader goes away, with the status shells see
    from a process killed by SIGPIPE (141). Python ignores SIGPIPE, so the write raised
    instead; stdout is pointed at /dev/null first, or the flush at exit would raise again
    and print "Exception ignored ..." (see the signal module's note on SIGPIPE)."""
    with contextlib.suppress(OSError, ValueError):  # no file descriptor (click's CliRunner)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(_KILLED_BY_SIGPIPE)


@click.group(cls=PgQueueGroup)
@click.version_option(package_name="pgqueue")
@click.pass_context
def main(ctx: click.Context) -> None:
    """pgqueue: a PostgreSQL-native durable job queue.

    Settings come from flags, then PGQUEUE_<NAME> environment variables, then [tool.pgqueue]
    in pyproject.toml; `pgqueue config` shows them.
    """
    from pgqueue.cli.config import default_map

    assert isinstance(ctx.command, click.Group)
    ctx.default_map = default_map(ctx.command)


def _register_commands() -> None:
    from pgqueue.cli.bench import bench
    from pgqueue.cli.config import config
    from pgqueue.cli.dashboard import dashboard
    from pgqueue.cli.demo import demo
    from pgqueue.cli.jobs import cancel, clear, dlq, enqueue, list_queues, retry, status, workers
    from pgqueue.cli.ops import migrate, prune
    from pgqueue.cli.queues import limit, pause, resume
    from pgqueue.cli.schedules import schedules
    from pgqueue.cli.work import work

    for command in (cancel, clear, config, demo, dlq, enqueue, list_queues, migrate, retry, status):
        main.add_command(command)
    for command in (bench, dashboard, limit, pause, prune, resume, schedules, work, workers):
        main.add_command(command)


_register_commands()
