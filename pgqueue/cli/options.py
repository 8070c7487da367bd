"""What the commands share: the --dsn, --log-level and --log-format options, the Duration
type, and ``with_queue``, which runs one API call on a connected Queue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from pgqueue.durations import as_timedelta
from pgqueue.queue import Queue
from pgqueue.settings import resolve_dsn

T = TypeVar("T")


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
