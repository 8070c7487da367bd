"""Where settings come from: flags, then PGQUEUE_* environment variables, then the
``[tool.pgqueue]`` table of the project's pyproject.toml. The database: --dsn, then PGQUEUE_DSN,
then DATABASE_URL, else the embedded server (a DSN holds a password: not in pyproject)."""

from __future__ import annotations

import logging
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pgqueue.dsn import check_dsn
from pgqueue.errors import ConfigurationError

log = logging.getLogger("pgqueue")

# SQLAlchemy-style URLs name a driver (postgresql+asyncpg://); asyncpg wants the plain scheme.
_DRIVER_SUFFIX = re.compile(r"^(postgres(?:ql)?)\+\w+://")


@dataclass(frozen=True)
class ResolvedDsn:
    dsn: str
    source: str  # "--dsn", "PGQUEUE_DSN", "DATABASE_URL" or "embedded"


def configured_dsn(flag: str | None = None) -> ResolvedDsn | None:
    """The DSN that is configured, and where; None when the embedded server would be used."""
    for source, value in (
        ("--dsn", flag),
        ("PGQUEUE_DSN", os.environ.get("PGQUEUE_DSN")),
        ("DATABASE_URL", os.environ.get("DATABASE_URL")),
    ):
        if value:
            return ResolvedDsn(check_dsn(_DRIVER_SUFFIX.sub(r"\1://", value), source), source)
    return None


def resolve_dsn(flag: str | None = None) -> ResolvedDsn:
    """The DSN to use and where it came from; starts the embedded server when none is set."""
    configured = configured_dsn(flag)
    if configured is not None:
        return configured
    from pgqueue.embedded import start_embedded_server

    return ResolvedDsn(start_embedded_server(), "embedded")


def environment_variable(name: str) -> str:
    """The environment variable of a setting: ``poll_interval`` -> ``PGQUEUE_POLL_INTERVAL``."""
    return f"PGQUEUE_{name.upper()}"


def project_settings(directory: Path | None = None) -> tuple[dict[str, Any], Path | None]:
    """``[tool.pgqueue]`` of the nearest pyproject.toml at or above ``directory`` (default: the
    working directory), keys with dashes or underscores alike, and the file it came from."""
    start = (directory or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            try:
                table = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as error:
                raise ConfigurationError(f"{path} is not valid TOML: {error}") from error
            section = table.get("tool", {}).get("pgqueue", {})
            if not isinstance(section, dict):
                raise ConfigurationError(f"[tool.pgqueue] in {path} must be a table")
            return {key.replace("-", "_"): value for key, value in section.items()}, path
    return {}, None


def database_address(flag: str | None) -> str:
    """host:port (or the socket directory, or the host list) of the configured database, for
    error messages."""
    configured = configured_dsn(flag)
    if configured is None:
        return "the embedded server"
    parts = urlsplit(configured.dsn)
    hosts = parts.netloc.rpartition("@")[2] or parse_qs(parts.query).get("host", [""])[-1]
    hosts = hosts or "localhost"
    if not re.search(r":[0-9]+$|,|^/", hosts):  # one host without a port
        hosts += ":5432"
    return f"{hosts} (from {configured.source})"
