"""Real PostgreSQL for every test: PGQUEUE_TEST_DSN, else a server on 127.0.0.1:5432 if one
answers, else the embedded server (PGQUEUE_TEST_DSN=embedded forces it). Migrations run once
into a template database; each test gets its own clone (CREATE DATABASE ... TEMPLATE), made
ahead of time in the background and dropped in the background after the test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
async def scratch_database(server_dsn: str) -> AsyncIterator[str]:
    """An empty database of the caller's own, dropped after."""
    name = f"pgqueue_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(server_dsn, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class Clones:
    """Clones of the template, each made before a test asks for it and dropped after it.

    A clone takes the server about 0.3 s to make (CREATE DATABASE copies the template through
    the WAL), longer than most tests run: made on two threads while the tests before run, it is
    usually ready when asked for, and the suite no longer waits on it. Each test still gets a
    database that nothing else ever used."""

    AHEAD = 2  # clones kept ready

    def __init__(self, server_dsn: str, template: str) -> None:
        self._server_dsn = server_dsn
        self._template = template
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clones")
        self._ready: deque[Future[str]] = deque()
        self._drops: list[Future[None]] = []

    async def take(self) -> str:
        """The name of a fresh clone, this caller's alone."""
        while len(self._ready) <= self.AHEAD:
            self._ready.append(self._threads.submit(asyncio.run, self._create()))
        return await asyncio.wrap_future(self._ready.popleft())

    def drop(self, name: str) -> None:
        self._drops.append(self._threads.submit(asyncio.run, self._drop(name)))

    def close(self) -> None:
        """Drop the clones nobody took; wait until every drop has run."""
        for made in self._ready:
            self.drop(made.result())
        self._threads.shutdown(wait=True)
        for dropped in self._drops:
            dropped.result()  # a failed drop fails the session: no database is left behind

    async def _create(self) -> str:
        name = f"pgqueue_test_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return name

    async def _drop(self, name: str) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _admin(self, statement: str) -> None:
        admin = await asyncpg.connect(self._server_dsn)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def clones(server_dsn: str, template_database: str) -> Iterator[Clones]:
    made = Clones(server_dsn, template_database)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
async def dsn(server_dsn: str, clones: Clones) -> AsyncIterator[str]:
    """A freshly migrated database of this test's own."""
    name = await clones.take()
    try:
        yield with_database(server_dsn, name)
    finally:
        clones.drop(name)


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
