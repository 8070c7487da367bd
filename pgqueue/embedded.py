"""An embedded PostgreSQL server for when no DSN is configured, so trying pgqueue needs none.

It uses the ``pgserver`` package (PostgreSQL binaries in a wheel), keeps its data in a per-user
directory (``PGQUEUE_EMBEDDED_DIR`` overrides it) and listens on a Unix socket only. The server
is shared by the pgqueue processes of this user and stops when the last of them exits.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from pgqueue.errors import ConfigurationError

log = logging.getLogger("pgqueue")

_servers: dict[Path, object] = {}  # keeps each server's handle alive for this process's lifetime


def data_directory() -> Path:
    configured = os.environ.get("PGQUEUE_EMBEDDED_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pgqueue" / "postgres"


def start_embedded_server(directory: Path | None = None, *, delete_on_exit: bool = False) -> str:
    """Start (or join) the embedded server and return its DSN."""
    directory = directory or data_directory()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pgserver's platformdirs warns about XDG_RUNTIME_DIR
            from pgserver.postgres_server import get_server

            directory.mkdir(parents=True, exist_ok=True)
            server = get_server(directory, cleanup_mode="delete" if delete_on_exit else "stop")
    except Exception as error:
        raise ConfigurationError(
            f"no DSN is configured and the embedded PostgreSQL in {directory} did not start "
            f"({error}): set PGQUEUE_DSN or pass --dsn"
        ) from error
    _servers[directory] = server
    dsn: str = server.get_uri()
    log.info(
        "no DSN configured: using the embedded PostgreSQL in %s (set PGQUEUE_DSN to use yours)",
        directory,
    )
    return dsn
