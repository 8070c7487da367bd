"""Executors: each runs a Statement on one kind of connection. This is how SQL is run.

``connection=`` may be an asyncpg connection, a SQLAlchemy ``AsyncConnection``/``AsyncSession``
(over asyncpg) or a sync ``Connection``/``Session`` (any PostgreSQL driver); the store's own
statements run on its asyncpg pool. pgqueue runs its statements inside the caller's
transaction and never begins or commits one on a connection it does not own. This is the
only module that knows SQLAlchemy.

A synchronous executor (``SyncExecutor``: SQLAlchemy's here; psycopg 3 or Django's connection
next) has the same shape with a plain ``def run``: it sends ``statement.query.sql`` with
``statement.args`` and hands the rows, as mappings, to ``statement.decode``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from pgqueue.sql import Row, Statement

T = TypeVar("T")

_POSITIONAL = re.compile(r"\$(\d+)")


class Executor(Protocol):
    """Runs one statement and returns what its decoder makes of the rows."""

    async def run(self, statement: Statement[T]) -> T: ...


class AsyncpgExecutor:
    """On an asyncpg pool (each statement on a connection it acquires and releases) or on one
    connection, in whatever transaction it has open."""

    def __init__(self, connection: asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool) -> None:
        self._connection = connection

    async def run(self, statement: Statement[T]) -> T:
        rows: Sequence[Row] = await self._connection.fetch(statement.query.sql, *statement.args)
        return statement.decode(rows)


class SyncExecutor(Protocol):
    """The synchronous counterpart of Executor, for a connection that blocks."""

    def run(self, statement: Statement[T]) -> T: ...


class SqlAlchemySyncExecutor:
    """Sends the statement through a synchronous SQLAlchemy ``Connection`` or ``Session`` (any
    PostgreSQL driver), in its transaction."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def run(self, statement: Statement[T]) -> T:
        return statement.decode(_rows(self._connection.execute(*_sqlalchemy(statement))))


class SqlAlchemyExecutor:
    """Sends the statement through a SQLAlchemy ``AsyncConnection`` or ``AsyncSession``, so it
    joins the session's transaction."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def run(self, statement: Statement[T]) -> T:
        return statement.decode(_rows(await self._connection.execute(*_sqlalchemy(statement))))


class BlockingExecutor:
    """An Executor over a SyncExecutor: a caller's synchronous session, given to an async
    method, runs pgqueue's statements as it runs the caller's own, blocking the loop."""

    def __init__(self, executor: SyncExecutor) -> None:
        self._executor = executor

    async def run(self, statement: Statement[T]) -> T:
        return self._executor.run(statement)


def _sqlalchemy(statement: Statement[Any]) -> tuple[Any, dict[str, object]]:
    """The statement as SQLAlchemy's text() with named binds, and their values."""
    from sqlalchemy import text

    # $1 -> (:p1): the parentheses keep casts such as $1::jsonb apart from the bind name.
    sql = text(_POSITIONAL.sub(r"(:p\1)", statement.query.sql))
    return sql, {f"p{index}": value for index, value in enumerate(statement.args, start=1)}


def _rows(result: Any) -> Sequence[Row]:
    rows: Sequence[Row] = result.mappings().fetchall() if result.returns_rows else []
    return rows


def database_error(error: BaseException) -> tuple[str, str] | None:
    """(SQLSTATE, primary message) of an error the server raised, whichever driver (asyncpg,
    or psycopg/asyncpg under SQLAlchemy) carried it; None for any other error."""
    cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
    cause = getattr(cause, "__cause__", None) or cause  # its asyncpg adapter wraps once more
    if isinstance(cause, asyncpg.PostgresError):
        return str(cause.sqlstate), str(cause.args[0] if cause.args else cause)
    diagnostics = getattr(cause, "diag", None)  # psycopg
    sqlstate = getattr(cause, "sqlstate", None)
    if diagnostics is not None and isinstance(sqlstate, str):
        return sqlstate, str(diagnostics.message_primary)
    return None


def executor_for(connection: object) -> Executor:
    """Wrap a caller's connection; raise TypeError naming what is accepted otherwise."""
    if isinstance(connection, asyncpg.Connection | PoolConnectionProxy):
        return AsyncpgExecutor(connection)
    module = type(connection).__module__
    if module.startswith("sqlalchemy."):
        from sqlalchemy import Connection
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
        from sqlalchemy.orm import Session

        if isinstance(connection, AsyncConnection | AsyncSession):
            return SqlAlchemyExecutor(connection)
        if isinstance(connection, Connection | Session):
            return BlockingExecutor(SqlAlchemySyncExecutor(connection))
    raise TypeError(
        f"connection= got a {type(connection).__qualname__}: pass an asyncpg connection or a "
        "SQLAlchemy Connection, Session, AsyncConnection or AsyncSession"
    )


@contextlib.asynccontextmanager
async def transaction_for(connection: object | None, pool: asyncpg.Pool) -> AsyncIterator[Executor]:
    """An executor whose statements commit or roll back together: a new transaction on one of
    the pool's connections, a transaction (a savepoint if one is open) on the caller's asyncpg
    connection, or the caller's SQLAlchemy transaction, which is always open."""
    if connection is None:
        async with pool.acquire() as own, own.transaction():
            yield AsyncpgExecutor(own)
    elif isinstance(connection, asyncpg.Connection | PoolConnectionProxy):
        async with connection.transaction():
            yield AsyncpgExecutor(connection)
    else:
        yield executor_for(connection)
