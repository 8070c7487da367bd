"""Schema migrations: alembic, with its version table in the ``pgqueue`` schema.

Revisions live in ``migrations/`` (shipped inside the wheel as ``pgqueue/migrations``); each one
runs its sibling ``NNNN_name.up.sql`` / ``.down.sql``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
from pathlib import Path
from typing import Any

from alembic import command, op
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.util import await_only

from pgqueue.store import MigrationStore

VERSION_TABLE_SCHEMA = "pgqueue"


def script_location() -> Path:
    """The migrations directory: inside the installed package, else the source tree's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"pgqueue's migrations are missing next to {here}")


def alembic_config(*, dsn: str | None = None) -> Config:
    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(script_location()))
    config.attributes["dsn"] = dsn
    return config


async def upgrade(dsn: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (alembic runs its own event loop in a thread)."""
    await asyncio.to_thread(command.upgrade, alembic_config(dsn=dsn), revision)


async def downgrade(dsn: str, revision: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(dsn=dsn), revision)


def upgrade_sql(revision: str = "head") -> str:
    """The SQL that ``upgrade`` would run, for a DBA to review and apply by hand."""
    config = alembic_config()
    output = io.StringIO()
    config.output_buffer = output
    command.upgrade(config, revision, sql=True)
    return output.getvalue()


def prepare_schema(connection: Connection) -> None:
    """Create the schema alembic's version table lives in; serialise concurrent migrations."""
    MigrationStore(connection).prepare_schema()


def run_migrations(connection: Connection, revision: str = "head") -> None:
    """Upgrade pgqueue's schema on a SQLAlchemy connection, e.g. from your own alembic env.py.

    pgqueue keeps its own history (``pgqueue.alembic_version``), apart from yours. It joins the
    connection's transaction if one is open, else runs in (and commits) its own. It drives the
    revisions through a MigrationContext, not alembic's global ``context``, so calling it from
    inside another alembic environment is safe.
    """
    script = ScriptDirectory(str(script_location()))

    def steps(current: Any, _: MigrationContext) -> Any:
        return script._upgrade_revs(revision, current)

    with contextlib.nullcontext() if connection.in_transaction() else connection.begin():
        prepare_schema(connection)
        migration_context = MigrationContext.configure(
            connection,
            opts={"version_table_schema": VERSION_TABLE_SCHEMA, "fn": steps, "script": script},
        )
        with Operations.context(migration_context):
            migration_context.run_migrations()


def run_sql_file(revision_file: str, direction: str) -> None:
    """Run ``<revision>.<direction>.sql`` beside a revision file (called from revisions)."""
    sql = Path(revision_file).with_suffix(f".{direction}.sql").read_text(encoding="utf-8")
    if op.get_context().as_sql:  # offline: `pgqueue migrate --sql`
        op.execute(sql.replace(":", r"\:"))  # escaped so text() finds no bind parameters
        return
    # The driver's own connection runs the whole script (functions included) in one call,
    # inside the transaction alembic holds.
    driver: Any = op.get_bind().connection.driver_connection
    if inspect.iscoroutinefunction(driver.execute):
        await_only(driver.execute(sql))
    else:
        with driver.cursor() as cursor:
            cursor.execute(sql)
