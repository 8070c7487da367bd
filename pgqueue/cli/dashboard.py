"""``pgqueue dashboard``: serve the web dashboard and its JSON API."""

from __future__ import annotations

import asyncio
import logging

import click

from pgqueue.cli.options import dsn_option, log_level_option
from pgqueue.dsn import redact_dsn
from pgqueue.logs import configure_logging
from pgqueue.queue import Queue
from pgqueue.registry import load_app
from pgqueue.settings import resolve_dsn

log = logging.getLogger("pgqueue")


@click.command()
@dsn_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--auth",
    metavar="USER:PASSWORD",
    envvar="PGQUEUE_DASHBOARD_AUTH",
    help="Require HTTP Basic with these credentials. Env: PGQUEUE_DASHBOARD_AUTH (which, unlike "
    "the flag, no other user sees in the process list).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Without credentials, only requests naming a loopback address in their Host header "
    "are served (against DNS rebinding); allow this name too (repeatable).",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Show everything, change nothing: no retry, cancel or pause.",
)
@click.option(
    "--app",
    "apps",
    envvar="PGQUEUE_APP",
    metavar="MODULE",
    help="Module(s) defining your Job classes, comma-separated: POST /api/jobs enqueues and "
    "validates only the job types registered here. Env: PGQUEUE_APP.",
)
@log_level_option
def dashboard(
    dsn: str | None,
    host: str,
    port: int,
    auth: str | None,
    allowed_hosts: tuple[str, ...],
    read_only: bool,
    apps: str | None,
    log_level: str,
) -> None:
    """Serve the dashboard and the JSON API (needs the ``dashboard`` extra).

    Binds to 127.0.0.1 unless --host says otherwise; any other address needs credentials:
    --auth, or a token in PGQUEUE_DASHBOARD_TOKEN (sent as "Authorization: Bearer TOKEN", or as
    the password of HTTP Basic). Every change is a POST checked for CSRF.
    """
    import os

    try:
        import uvicorn

        from pgqueue.dashboard import create_app
        from pgqueue.dashboard.security import Credentials, is_loopback
    except ImportError as error:
        raise click.ClickException(
            f"the dashboard needs its extra ({error.name} is missing): "
            "pip install 'pgqueue[dashboard]'"
        ) from None
    token = os.environ.get("PGQUEUE_DASHBOARD_TOKEN") or None
    try:
        credentials = Credentials.parse(auth, token)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--auth") from None
    if credentials is None and not is_loopback(host):
        raise click.UsageError(
            f"refusing to serve the dashboard on {host} without credentials: pass --auth "
            "USER:PASSWORD (or PGQUEUE_DASHBOARD_AUTH) or set PGQUEUE_DASHBOARD_TOKEN, or bind "
            "to 127.0.0.1"
        )
    configure_logging(log_level, "text")
    for module in (apps or "").split(","):
        if module.strip():
            load_app(module.strip())
    resolved = resolve_dsn(dsn)

    async def serve() -> None:
        async with Queue.connect(resolved.dsn) as queue:
            app = create_app(
                queue,
                auth=auth,
                token=token,
                read_only=read_only,
                # With credentials a rebinding page cannot get in; without, only loopback names.
                allowed_hosts=None if credentials else allowed_hosts,
            )
            config = uvicorn.Config(
                app, host=host, port=port, lifespan="off", log_level=log_level.lower()
            )
            where = f"[{host}]" if ":" in host else host
            log.info(
                "pgqueue dashboard on http://%s:%d%s, database %s",
                where,
                port,
                " (read-only)" if read_only else "",
                redact_dsn(resolved.dsn),
            )
            await uvicorn.Server(config).serve()

    asyncio.run(serve())
