"""Migrations: the round trip on an empty database, the offline SQL, an application's own sync
connection, and the built wheel shipping (and running) the migrations."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pgqueue import JobStatus, Queue, SchemaNotInstalled
from pgqueue.migrate import downgrade, run_migrations, upgrade, upgrade_sql
from pgqueue.sql import SCHEMA_REVISION
from tests.jobs import Echo

REPOSITORY = Path(__file__).resolve().parents[2]


async def schema_state(dsn: str) -> dict[str, object]:
    """What the migrations create, and the revision alembic has recorded."""
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT to_regclass('pgqueue.jobs') IS NOT NULL AS jobs,"
            " to_regclass('pgqueue.workers') IS NOT NULL AS workers,"
            " to_regtype('pgqueue.job_status') IS NOT NULL AS job_status,"
            " (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            "  WHERE n.nspname = 'pgqueue') AS functions"
        )
        versions = []
        if await connection.fetchval("SELECT to_regclass('pgqueue.alembic_version') IS NOT NULL"):
            versions = await connection.fetch("SELECT version_num FROM pgqueue.alembic_version")
        return {**dict(row or {}), "versions": [v["version_num"] for v in versions]}
    finally:
        await connection.close()


INSTALLED = {
    "jobs": True,
    "workers": True,
    "job_status": True,
    # enqueue, enqueue_batch, cancel_job, retry_job, retry_failed_jobs; since 0005 enqueue_job,
    # claim_jobs, complete_jobs, fail_job, rescue_expired_jobs, clear_jobs, settle_dependents,
    # notify_freed_slots, unique_key_is_taken, release_expired_unique_keys, enqueue_schedule_ticks;
    # since 0008 worker_lease, keep_leased_workers, deregister_worker; since 0009 next_run_at;
    # since 0010 estimated_rows, waiting_jobs
    "functions": 22,
    "versions": [SCHEMA_REVISION],
}
REMOVED = {"jobs": False, "workers": False, "job_status": False, "functions": 0, "versions": []}


async def test_upgrade_downgrade_upgrade_round_trips(empty_dsn: str) -> None:
    await upgrade(empty_dsn)
    assert await schema_state(empty_dsn) == INSTALLED

    await downgrade(empty_dsn, "base")
    assert await schema_state(empty_dsn) == REMOVED

    await upgrade(empty_dsn)
    assert await schema_state(empty_dsn) == INSTALLED
    connection = await asyncpg.connect(empty_dsn)
    try:
        job_id = await connection.fetchval("SELECT pgqueue.enqueue(job_type => 'round.trip')")
        job_type = await connection.fetchval(
            "SELECT job_type FROM pgqueue.jobs WHERE id = $1", job_id
        )
    finally:
        await connection.close()
    assert job_type == "round.trip"


# Who may execute each function, by name (a signature changes across revisions; its grants must
# not): the effective privileges, an unset ACL being the default one.
GRANTS = (
    "SELECT DISTINCT p.proname::text, coalesce(nullif(a.grantee::regrole::text, '-'), 'PUBLIC'),"
    " a.is_grantable::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,"
    " aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
    " WHERE n.nspname = 'pgqueue' AND a.privilege_type = 'EXECUTE' ORDER BY 1, 2"
)


async def schema_definition(dsn: str) -> dict[str, list[tuple[str, ...]]]:
    """Everything in the pgqueue schema, as PostgreSQL prints it back."""
    queries = {
        "columns": "SELECT table_name::text, column_name::text, data_type::text,"
        " coalesce(column_default, ''), is_nullable::text FROM information_schema.columns"
        " WHERE table_schema = 'pgqueue' ORDER BY table_name, ordinal_position",
        "functions": "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgqueue' ORDER BY 1",
        "indexes": "SELECT indexname::text, indexdef FROM pg_indexes"
        " WHERE schemaname = 'pgqueue' ORDER BY 1",
        "constraints": "SELECT conname::text, pg_get_constraintdef(c.oid) FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'pgqueue' ORDER BY 1",
        "views": "SELECT viewname::text, definition FROM pg_views"
        " WHERE schemaname = 'pgqueue' ORDER BY 1",
        "triggers": "SELECT tgname::text, pg_get_triggerdef(t.oid) FROM pg_trigger t"
        " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'pgqueue' AND NOT t.tgisinternal ORDER BY 1",
        "grants": GRANTS,
    }
    connection = await asyncpg.connect(dsn)
    try:
        return {
            name: [tuple(row) for row in await connection.fetch(sql)]
            for name, sql in queries.items()
        }
    finally:
        await connection.close()


# What each revision adds that its downgrade must take away again, as schema_definition shows it.
ADDED = {
    "0007": ("columns", ("jobs", "trace_context", "jsonb", "", "YES")),
    "0008": ("triggers", ("workers_keep_leased",)),
    "0009": ("functions", ("pgqueue.next_run_at(text[],text[])",)),
    "0010": ("functions", ("pgqueue.waiting_jobs(text,integer)",)),
}


@pytest.mark.parametrize("revision", sorted(ADDED))
async def test_downgrading_a_revision_restores_the_previous_schema_exactly(
    empty_dsn: str, revision: str
) -> None:
    previous = f"{int(revision) - 1:04d}"
    await upgrade(empty_dsn, previous)
    before = await schema_definition(empty_dsn)

    await upgrade(empty_dsn, revision)
    upgraded = await schema_definition(empty_dsn)
    await downgrade(empty_dsn, previous)

    assert await schema_definition(empty_dsn) == before
    kind, added = ADDED[revision]
    assert added in [row[: len(added)] for row in upgraded[kind]]
    assert added not in [row[: len(added)] for row in before[kind]]


async def test_0007_keeps_the_grants_on_the_functions_it_creates_anew(empty_dsn: str) -> None:
    """An operator who took EXECUTE from PUBLIC and gave it to the app's role keeps exactly that,
    up and down, though 0007 drops and creates the enqueue and claim functions."""
    role = f"pgqueue_app_{uuid4().hex[:8]}"
    await upgrade(empty_dsn, "0006")
    admin = await asyncpg.connect(empty_dsn)
    try:
        await admin.execute(f"CREATE ROLE {role}")
        await admin.execute("SELECT set_config('tests.role', $1, false)", role)
        await admin.execute(
            "DO $$ DECLARE f regprocedure; BEGIN FOR f IN SELECT p.oid FROM pg_proc p"
            " WHERE p.pronamespace = 'pgqueue'::regnamespace AND p.proname IN"
            " ('enqueue', 'enqueue_job', 'enqueue_batch', 'claim_jobs') LOOP"
            " EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);"
            " EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f,"
            " current_setting('tests.role')); END LOOP; END $$"
        )
        before = [tuple(row) for row in await admin.fetch(GRANTS)]
        assert ("enqueue_job", role, "false") in before
        assert ("enqueue_job", "PUBLIC", "false") not in before

        await upgrade(empty_dsn, "0007")
        assert [tuple(row) for row in await admin.fetch(GRANTS)] == before
        may_enqueue = await admin.fetchval(
            "SELECT has_function_privilege($1, 'pgqueue.enqueue_job(text, jsonb, text,"
            " timestamptz, integer, integer, interval, interval, text, interval, bigint[],"
            " boolean, jsonb)', 'EXECUTE')",
            role,
        )
        assert may_enqueue
        await downgrade(empty_dsn, "0006")
        assert [tuple(row) for row in await admin.fetch(GRANTS)] == before
    finally:
        await admin.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        await admin.close()


async def test_upgrade_of_a_migrated_database_changes_nothing(empty_dsn: str) -> None:
    await upgrade(empty_dsn)

    await upgrade(empty_dsn)

    assert await schema_state(empty_dsn) == INSTALLED


async def test_queue_refuses_a_database_without_the_schema(empty_dsn: str) -> None:
    with pytest.raises(SchemaNotInstalled, match="run `pgqueue migrate`"):
        await Queue.connect(empty_dsn)

    await upgrade(empty_dsn)
    async with Queue.connect(empty_dsn) as queue:
        job_id = await queue.enqueue(Echo(text="now it works"))
        assert await queue.get_job_status(job_id) is JobStatus.PENDING


async def test_a_borrowed_pool_is_checked_on_request(empty_dsn: str) -> None:
    async with asyncpg.create_pool(empty_dsn) as pool:
        borrowed = Queue(pool)
        with pytest.raises(SchemaNotInstalled, match="run `pgqueue migrate`"):
            await borrowed.check_schema()
        await upgrade(empty_dsn)
        await borrowed.check_schema()
        assert await borrowed.get_job_status(await borrowed.enqueue(Echo(text="x"))) == "pending"


def test_upgrade_sql_holds_the_schema_for_review() -> None:
    sql = upgrade_sql()

    assert "CREATE TABLE pgqueue.jobs" in sql
    assert "CREATE FUNCTION pgqueue.enqueue" in sql
    assert "INSERT INTO pgqueue.alembic_version" in sql


def test_run_migrations_on_an_applications_sync_connection(empty_dsn: str) -> None:
    engine = create_engine(make_url(empty_dsn).set(drivername="postgresql+psycopg"))
    try:
        with engine.begin() as connection:
            run_migrations(connection)
        with engine.connect() as connection:
            jobs = connection.execute(text("SELECT to_regclass('pgqueue.jobs')::text")).scalar()
            version = connection.execute(
                text("SELECT version_num FROM pgqueue.alembic_version")
            ).scalar()
    finally:
        engine.dispose()

    assert (jobs, version) == ("pgqueue.jobs", SCHEMA_REVISION)


# --- the wheel --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this tree, unzipped into a directory outside the repository."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
    )
    [wheel] = out.glob("pgqueue-*.whl")
    unpacked = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    return unpacked


async def run_python(code: str, *args: str, pythonpath: Path) -> str:
    """Run ``python -c code`` with only ``pythonpath`` ahead of the installed packages, from a
    directory outside the repository; return its stdout."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PGQUEUE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        cwd=pythonpath.parent,
        env={**env, "PYTHONPATH": str(pythonpath)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode().strip()


def test_wheel_ships_the_migrations(unpacked_wheel: Path) -> None:
    assert (unpacked_wheel / "pgqueue/migrations/env.py").is_file()
    assert (unpacked_wheel / "pgqueue/migrations/versions/0001_initial.py").is_file()
    assert (unpacked_wheel / "pgqueue/migrations/versions/0001_initial.up.sql").is_file()
    assert (unpacked_wheel / "pgqueue/migrations/versions/0001_initial.down.sql").is_file()


def test_wheel_ships_the_schema_file(unpacked_wheel: Path) -> None:
    shipped = unpacked_wheel / "pgqueue/sql/schema.sql"

    assert shipped.read_text() == (REPOSITORY / "pgqueue/sql/schema.sql").read_text()


async def test_installed_package_finds_its_own_migrations(unpacked_wheel: Path) -> None:
    printed = await run_python(
        "import pgqueue.migrate as m; print(m.script_location())", pythonpath=unpacked_wheel
    )

    assert Path(printed) == unpacked_wheel / "pgqueue" / "migrations"
    assert not Path(printed).is_relative_to(REPOSITORY)


async def test_migrations_run_from_the_installed_wheel(
    unpacked_wheel: Path, empty_dsn: str
) -> None:
    printed = await run_python(
        "import asyncio, sys, pgqueue.migrate as m;"
        " asyncio.run(m.upgrade(sys.argv[1])); print(m.__file__)",
        empty_dsn,
        pythonpath=unpacked_wheel,
    )

    assert Path(printed).is_relative_to(unpacked_wheel)
    assert await schema_state(empty_dsn) == INSTALLED
