"""Where the database comes from: --dsn, then PGQUEUE_DSN, then DATABASE_URL, else embedded."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("pgqueue")

# SQLAlchemy-style URLs name a driver (postgresql+asyncpg://); asyncpg wants the plain scheme.
_DRIVER_SUFFIX = re.compile(r"^(postgres(?:ql)?)\+\w+://")


@dataclass(frozen=True)
class ResolvedDsn:
    dsn: str
    source: str  # "--dsn", "PGQUEUE_DSN", "DATABASE_URL" or "embedded"


def resolve_dsn(flag: str | None = None) -> ResolvedDsn:
    """The DSN to use and where it came from; starts the embedded server when none is set."""
    for source, value in (
        ("--dsn", flag),
        ("PGQUEUE_DSN", os.environ.get("PGQUEUE_DSN")),
        ("DATABASE_URL", os.environ.get("DATABASE_URL")),
    ):
        if value:
            return ResolvedDsn(_DRIVER_SUFFIX.sub(r"\1://", value), source)
    from pgqueue.embedded import start_embedded_server

    return ResolvedDsn(start_embedded_server(), "embedded")


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ***, safe to log."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return re.sub(r"password=[^\s&]*", "password=***", dsn)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
