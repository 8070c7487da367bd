"""``pgqueue work``: run a worker in this process."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import click

from pgqueue.cli.ops import retention_from, retention_options
from pgqueue.cli.options import dsn_option, log_format_option, log_level_option
from pgqueue.dsn import redact_dsn
from pgqueue.durations import as_timedelta
from pgqueue.limits import QueueLimit
from pgqueue.logs import LogFormat, configure_logging
from pgqueue.options import check_queue_name
from pgqueue.queue import Queue
from pgqueue.registry import load_app
from pgqueue.settings import resolve_dsn
from pgqueue.worker import Worker
from pgqueue.worker.config import check_heartbeat
from pgqueue.worker.supervisor import Supervisor, SupervisorLink

log = logging.getLogger("pgqueue")


def child_args(args: Sequence[str], slot: int, metrics_port: int | None) -> list[str]:
    """The command line of the worker in ``slot``: ours without --workers (the children run
    in-process), and with a metrics port of its own (PORT + slot), wherever PORT was set."""
    kept: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg == "--workers":
            skip_next = True
        elif not arg.startswith("--workers="):
            kept.append(arg)
    if metrics_port is not None:  # the last --metrics-port on a command line wins
        kept += ["--metrics-port", str(metrics_port + slot)]
    return kept


def _split(value: str | None) -> list[str] | None:
    names = [name.strip() for name in (value or "").split(",") if name.strip()]
    return names or None


@click.command()
@click.option(
    "--app",
    "apps",
    envvar="PGQUEUE_APP",
    required=True,
    metavar="MODULE",
    help="Module defining your Job classes (imported so they register); comma-separated for "
    "several. Env: PGQUEUE_APP.",
)
@click.option(
    "--queues",
    metavar="Q1,Q2",
    help="Queues to work on. Default: every queue your Job classes name.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes. 1 runs the worker in this process (no supervisor); N > 1 runs N "
    "under a supervisor that restarts any that die and forwards SIGTERM/SIGINT.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Jobs run at once by this process.",
)
@click.option(
    "--prefetch",
    type=click.IntRange(min=0),
    default=None,
    help="Jobs claimed ahead of free slots, so a finished job's slot refills without waiting on "
    "the database  [default: a quarter of --concurrency, at most 50]",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    help="Seconds between polls when no NOTIFY arrives. Default: 5 (a backstop), or 1 with "
    "--no-listen.",
)
@click.option(
    "--no-listen",
    is_flag=True,
    help="Poll only, no LISTEN (PgBouncer in transaction mode without --listen-dsn).",
)
@click.option(
    "--listen-dsn",
    metavar="DSN",
    envvar="PGQUEUE_LISTEN_DSN",
    help="A direct connection to the server used only for LISTEN, when --dsn goes through "
    "PgBouncer in transaction mode. Env: PGQUEUE_LISTEN_DSN.",
)
@click.option(
    "--timeout",
    "job_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a job may run unless its class sets timeout. Default: no limit.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Retries after a failed first attempt, for jobs whose class and enqueue set none.",
)
@click.option(
    "--shutdown-grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds running jobs get to finish after SIGTERM/SIGINT before release.",
)
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds between this worker's heartbeats (and its checks for dead workers).",
)
@click.option(
    "--heartbeat-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="This worker's lease: seconds without a heartbeat after which it counts as dead and "
    "its jobs are rescued. Each worker is judged by its own.",
)
@click.option(
    "--blocked-loop-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Seconds the event loop may stay blocked (an async handler that never awaits) before "
    "this worker stops heartbeating, so that it counts as dead and its jobs are rescued once "
    "its lease (--heartbeat-timeout) runs out. Shorter blocks keep the heartbeat going.",
)
@click.option(
    "--queue-limits",
    metavar="Q=N,...",
    help="Cluster-wide concurrency limits set when the worker starts: emails=10 keeps at most 10 "
    "email jobs running across all workers.",
)
@click.option(
    "--queue-rates",
    metavar="Q=N/PERIOD,...",
    help="Cluster-wide rate limits set when the worker starts: emails=100/1m starts at most 100 "
    "email jobs per minute (units ms, s, m, h, d).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Serve Prometheus metrics at http://HOST:PORT/metrics. With --workers N, worker k "
    "(from 0) uses PORT + k. Default: no metrics.",
)
@click.option(
    "--metrics-host",
    default="0.0.0.0",
    show_default=True,
    help="Address the metrics listen on (all interfaces, for a Prometheus on another host; "
    "127.0.0.1 keeps them local).",
)
@retention_options
@dsn_option
@log_level_option
@log_format_option
def work(
    apps: str,
    queues: str | None,
    dsn: str | None,
    log_level: str,
    log_format: LogFormat,
    **options: Any,
) -> None:
    """Run a worker until SIGTERM or SIGINT (a second signal stops at once).

    On stop it claims nothing more, lets running jobs finish within --shutdown-grace, then
    puts the rest back to pending.
    """
    configure_logging(log_level, log_format)
    workers = options.pop("workers")
    listen_dsn = options.pop("listen_dsn")
    options = _worker_options(queues, options)  # checked before anything connects or starts
    for app in _split(apps) or []:
        load_app(app)
    if workers > 1:
        resolved = resolve_dsn(dsn)
        log.info(
            "starting %s worker processes on %s (from %s)",
            workers,
            redact_dsn(resolved.dsn),
            resolved.source,
        )
        slot_args = partial(child_args, sys.argv[2:], metrics_port=options["metrics_port"])
        sys.exit(asyncio.run(Supervisor(slot_args, workers).run()))
    asyncio.run(_work(dsn, listen_dsn, **options))


_DURATIONS = (
    "poll_interval",
    "timeout",
    "shutdown_grace",
    "heartbeat_interval",
    "heartbeat_timeout",
    "blocked_loop_timeout",
)


def _worker_options(queues: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """The flags as Worker keywords; a UsageError for values that do not fit together."""
    options["queues"] = _split(queues)
    options["timeout"] = options.pop("job_timeout")
    options["listen"] = not options.pop("no_listen")
    if options["poll_interval"] is None:
        options["poll_interval"] = 5.0 if options["listen"] else 1.0
    options["retention"] = retention_from(options)
    options["queue_limits"] = queue_limits_from(
        options.pop("queue_limits"), options.pop("queue_rates")
    )
    try:
        for name in _DURATIONS:  # click's FloatRange lets inf and nan through
            options[name] = as_timedelta(options[name], f"--{name.replace('_', '-')}")
        check_heartbeat(options["heartbeat_interval"], options["heartbeat_timeout"])
        for name in [*(options["queues"] or []), *options["queue_limits"]]:
            check_queue_name(name)
    except ValueError as error:  # InvalidQueueName is one too
        raise click.UsageError(str(error)) from error
    return options


def queue_limits_from(concurrency: str | None, rates: str | None) -> dict[str, QueueLimit]:
    """``emails=10`` and ``emails=100/1m`` -> {"emails": QueueLimit(10, 100, 60s)}."""
    limits: dict[str, QueueLimit] = {}
    for flag, text in (("--queue-limits", concurrency), ("--queue-rates", rates)):
        for item in _split(text) or []:
            name, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not name:
                raise click.BadParameter(f"{item!r} must look like QUEUE=VALUE", param_hint=flag)
            known = limits.get(name, QueueLimit())
            try:
                if flag == "--queue-rates":
                    rated = QueueLimit.parse_rate(value)
                    limits[name] = replace(known, rate=rated.rate, per=rated.per)
                else:
                    limits[name] = replace(known, concurrency=_whole_number(value))
            except ValueError as error:
                raise click.BadParameter(f"{item!r}: {error}", param_hint=flag) from error
    return dict(sorted(limits.items()))


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"the limit must be a whole number of jobs, got {text!r}") from None


async def _work(dsn: str | None, listen_dsn: str | None, **options: Any) -> None:
    resolved = resolve_dsn(dsn)
    log.info("database %s (from %s)", redact_dsn(resolved.dsn), resolved.source)
    if listen_dsn:
        log.info("listening on %s", redact_dsn(listen_dsn))
    async with Queue.connect(
        resolved.dsn,
        max_size=max(4, min(options["concurrency"], 20)),
        # Either flag means --dsn goes through PgBouncer: keep no session state on it.
        pgbouncer=listen_dsn is not None or not options["listen"],
        listen_dsn=listen_dsn,
    ) as queue:
        worker = Worker(queue, **options)
        link = SupervisorLink.inherited()  # set when `--workers N` started this process
        await (worker.run() if link is None else link.run(worker))
