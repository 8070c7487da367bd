"""The ``pgqueue`` command. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input (a
malformed DSN, a job enqueue refuses).

Expected failures (an unreachable database, a missing schema, bad input) print one line on
stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import asyncpg
import click

from pgqueue.durations import as_timedelta
from pgqueue.errors import InvalidDsn, InvalidJob, PgQueueError
from pgqueue.queue import Queue
from pgqueue.settings import database_address, resolve_dsn

T = TypeVar("T")

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


dsn_option = click.option(
    "--dsn",
    metavar="DSN",
    help="PostgreSQL URL. Default: PGQUEUE_DSN, then DATABASE_URL, else an embedded server.",
)


def with_queue(dsn: str | None, action: Callable[[Queue], Awaitable[T]]) -> T:
    """Connect to the database (``--dsn`` or the environment), run one API call, disconnect."""

    async def run() -> T:
        async with Queue.connect(resolve_dsn(dsn).dsn) as queue:
            return await action(queue)

    return asyncio.run(run())


if TYPE_CHECKING:  # generic only in recent click; keep the runtime base plain
    _DurationBase = click.ParamType[timedelta]
else:
    _DurationBase = click.ParamType


class Duration(_DurationBase):
    """A duration: 90, 90s, 15m, 2h or 1d."""

    name = "duration"
    _UNITS: ClassVar[dict[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        unit = text[-1:] if text[-1:] in self._UNITS else "s"
        number = text[:-1] if text[-1:] in self._UNITS else text
        try:
            seconds = float(number) * self._UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not a duration: use e.g. 30, 30s, 15m, 2h or 1d", param, ctx)
        try:  # the checks of every duration pgqueue takes: finite, 0 to a century
            delta = as_timedelta(seconds, "the duration", shown=value)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        assert delta is not None
        return delta


log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="How much to log on stderr.",
)

log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
    help="text, or json: one JSON object per line, with job_id, queue, job_type, attempt and "
    "worker_id on every line about a job.",
)


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
