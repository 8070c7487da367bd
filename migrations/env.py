"""Alembic environment for pgqueue: async engine over asyncpg, version table in ``pgqueue``."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from pgqueue.migrate import VERSION_TABLE_SCHEMA, prepare_schema
from pgqueue.settings import resolve_dsn

config = context.config


def configure(connection: Connection) -> None:
    prepare_schema(connection)  # the version table lives in the schema: create it first
    context.configure(connection=connection, version_table_schema=VERSION_TABLE_SCHEMA)
    with context.begin_transaction():
        context.run_migrations()


async def migrate_with_asyncpg(dsn: str) -> None:
    # async_creator hands the DSN to asyncpg untouched (no URL rewriting, no second driver).
    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(dsn), poolclass=NullPool
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(configure)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url="postgresql://",
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},  # pyformat would double every % in the SQL
        version_table_schema=VERSION_TABLE_SCHEMA,
    )
    with context.begin_transaction():
        context.execute(f"CREATE SCHEMA IF NOT EXISTS {VERSION_TABLE_SCHEMA}")
        context.run_migrations()
else:
    asyncio.run(migrate_with_asyncpg(config.attributes.get("dsn") or resolve_dsn().dsn))
