"""The caller's connection, whatever its driver, behind one small interface.

``connection=`` may be an asyncpg connection, a SQLAlchemy ``AsyncConnection``/``AsyncSession``
(over asyncpg) or a sync ``Connection``/``Session`` (any PostgreSQL driver). pgqueue runs its
statements inside that connection's transaction and never begins or commits one itself.
This is the only module that knows SQLAlchemy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from pgqueue.sql import Query

_POSITIONAL = re.compile(r"\$(\d+)")


class Executor(Protocol):
    """Runs one named query and returns its first column."""

    async def fetch_column(self, query: Query, *args: object) -> list[Any]: ...


class AsyncpgExecutor:
    def __init__(self, connection: asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool) -> None:
        self._connection = connection

    async def fetch_column(self, query: Query, *args: object) -> list[Any]:
        return [row[0] for row in await self._connection.fetch(query.sql, *args)]


class SqlAlchemyExecutor:
    """Sends the query through SQLAlchemy so it joins the session's transaction."""

    def __init__(self, connection: Any, *, is_async: bool) -> None:
        self._connection = connection
        self._is_async = is_async

    async def fetch_column(self, query: Query, *args: object) -> list[Any]:
        from sqlalchemy import text

        # $1 -> (:p1): the parentheses keep casts such as $1::jsonb apart from the bind name.
        statement = text(_POSITIONAL.sub(r"(:p\1)", query.sql))
        params = {f"p{index}": value for index, value in enumerate(args, start=1)}
        if self._is_async:
            result = await self._connection.execute(statement, params)
        else:
            result = self._connection.execute(statement, params)
        rows: Sequence[Any] = result.fetchall()
        return [row[0] for row in rows]


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
            return SqlAlchemyExecutor(connection, is_async=True)
        if isinstance(connection, Connection | Session):
            return SqlAlchemyExecutor(connection, is_async=False)
    raise TypeError(
        f"connection= got a {type(connection).__qualname__}: pass an asyncpg connection or a "
        "SQLAlchemy Connection, Session, AsyncConnection or AsyncSession"
    )
