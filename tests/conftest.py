"""Real PostgreSQL for every test: PGQUEUE_TEST_DSN, else a server on 127.0.0.1:5432 if one
answers, else the embedded server (PGQUEUE_TEST_DSN=embedded forces it). Migrations run once
into a template database; each test gets its own clone (CREATE DATABASE ... TEMPLATE)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from pgqueue import Queue
from pgqueue.embedded import start_embedded_server
from pgqueue.migrate import upgrade

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


async def _answers(dsn: str) -> bool:
    try:
        connection = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An admin DSN of the server the whole session uses."""
    configured = os.environ.get("PGQUEUE_TEST_DSN")
    if configured and configured != "embedded":
        yield configured
    elif configured != "embedded" and asyncio.run(_answers(LOCAL_SERVER)):
        yield LOCAL_SERVER
    else:
        # Short path: the server's Unix socket lives in it (sun_path holds ~100 bytes).
        directory = Path(tempfile.mkdtemp(prefix="pgq-"))
        yield start_embedded_server(directory, delete_on_exit=True)


@pytest.fixture(scope="session")
async def template_database(server_dsn: str) -> AsyncIterator[str]:
    name = f"pgqueue_template_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await upgrade(with_database(server_dsn, name))
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def scratch_database(server_dsn: str, template: str | None = None) -> AsyncIterator[str]:
    """A database of the caller's own (a clone of ``template``, else empty), dropped after."""
    name = f"pgqueue_test_{uuid.uuid4().hex[:12]}"
    clone = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{clone}')
        yield with_database(server_dsn, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def dsn(server_dsn: str, template_database: str) -> AsyncIterator[str]:
    """A freshly migrated database of this test's own."""
    async with scratch_database(server_dsn, template_database) as database:
        yield database


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A database of this test's own with nothing in it (not migrated)."""
    async with scratch_database(server_dsn) as database:
        yield database


@pytest.fixture
async def queue(dsn: str) -> AsyncIterator[Queue]:
    async with Queue.connect(dsn) as connected:
        yield connected


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test database, for reading rows directly."""
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()
