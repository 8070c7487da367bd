"""An application that already uses alembic runs pgqueue's migrations from its own env.py."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from pgqueue.sql import SCHEMA_REVISION

APP_ENV = """
from alembic import context
from sqlalchemy import create_engine, pool
from pgqueue.migrate import run_migrations

engine = create_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
    run_migrations(connection)  # pgqueue's schema, with its own history in pgqueue.alembic_version
"""

APP_REVISION = """
from alembic import op
revision = "app1"
down_revision = None
def upgrade(): op.execute("CREATE TABLE orders (id serial PRIMARY KEY)")
def downgrade(): op.execute("DROP TABLE orders")
"""


async def test_app_env_upgrades_its_own_history_and_pgqueues_side_by_side(
    empty_dsn: str, tmp_path: Path
) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(APP_ENV)
    (tmp_path / "versions" / "app1_orders.py").write_text(APP_REVISION)
    config = Config()
    config.set_main_option("script_location", str(tmp_path))
    config.set_main_option(
        "sqlalchemy.url", empty_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    )

    for _ in range(2):  # the second run finds both histories at head and does nothing
        command.upgrade(config, "head")

    connection = await asyncpg.connect(empty_dsn)
    try:
        assert await connection.fetchval("SELECT version_num FROM public.alembic_version") == "app1"
        assert (
            await connection.fetchval("SELECT version_num FROM pgqueue.alembic_version")
            == SCHEMA_REVISION
        )
        assert await connection.fetchval("SELECT pgqueue.enqueue('x', '{}')") == 1
        assert await connection.fetchval("SELECT to_regclass('public.orders')::text") == "orders"
    finally:
        await connection.close()
