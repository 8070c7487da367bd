"""The ``pgqueue`` command's own behaviour: migrate, demo, errors and exit codes."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import pytest

from pgqueue import Queue
from pgqueue.sql import SCHEMA_REVISION
from tests.e2e.conftest import REPO, environment, pgqueue_command
from tests.jobs import Echo


async def test_migrate_creates_the_schema_and_is_idempotent(empty_dsn: str) -> None:
    for _ in range(2):
        result = pgqueue_command("migrate", "--dsn", empty_dsn)
        assert result.returncode == 0, result.stderr
        assert "pgqueue schema is up to date" in result.stdout
    connection = await asyncpg.connect(empty_dsn)
    try:
        assert (
            await connection.fetchval("SELECT version_num FROM pgqueue.alembic_version")
            == SCHEMA_REVISION
        )
        assert (
            await connection.fetchval("SELECT to_regclass('pgqueue.jobs')::text") == "pgqueue.jobs"
        )
    finally:
        await connection.close()


def test_migrate_sql_prints_the_ddl_without_a_database() -> None:
    result = pgqueue_command("migrate", "--sql", dsn="postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE pgqueue.jobs" in result.stdout
    assert "CREATE TABLE pgqueue.alembic_version" in result.stdout


async def test_migrate_sql_output_applies_to_an_empty_database(empty_dsn: str) -> None:
    result = pgqueue_command("migrate", "--sql", dsn="postgresql://nobody@127.0.0.1:1/none")
    connection = await asyncpg.connect(empty_dsn)
    try:
        await connection.execute(result.stdout)  # what a DBA would feed to psql
        assert (
            await connection.fetchval("SELECT version_num FROM pgqueue.alembic_version")
            == SCHEMA_REVISION
        )
        with pytest.raises(asyncpg.InvalidParameterValueError, match="delay -00:00:01 is negative"):
            await connection.fetchval("SELECT pgqueue.enqueue('x', delay => '-1 second')")
    finally:
        await connection.close()


async def test_demo_runs_its_jobs_to_the_expected_outcomes(dsn: str) -> None:
    result = pgqueue_command("demo", "--dsn", dsn)
    assert result.returncode == 0, result.stderr
    assert "failed for good (dead letter queue)" in result.stdout
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT job_type, status::text, attempts FROM pgqueue.jobs"
            " WHERE queue = 'pgqueue-demo' ORDER BY id"
        )
    finally:
        await connection.close()
    assert [tuple(r) for r in rows] == [
        ("demo.greet", "completed", 1),
        ("demo.thumbnail", "completed", 1),
        ("demo.greet", "completed", 1),
        ("demo.flaky_upload", "completed", 2),
        ("demo.charge_card", "failed", 2),
    ]
    assert (
        "queue pgqueue-demo: pending 0, scheduled 0, running 0, completed 4, failed 1"
        in result.stdout
    )


def test_unreachable_database_is_one_line_exit_1_and_never_shows_the_password() -> None:
    result = pgqueue_command(
        "work", "--app", "tests.jobs", dsn="postgresql://app:S3cr3t@127.0.0.1:1/x"
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [errors[0]]
    assert "cannot reach the database" in errors[0]
    assert "127.0.0.1" in errors[0]
    assert "Traceback" not in result.stderr
    assert "S3cr3t" not in result.stdout + result.stderr


async def test_database_without_the_schema_says_to_migrate(empty_dsn: str) -> None:
    result = pgqueue_command("work", "--app", "tests.jobs", "--dsn", empty_dsn)
    assert result.returncode == 1
    assert "run `pgqueue migrate`" in result.stderr


def test_pgqueue_app_environment_variable_stands_for_app() -> None:
    result = pgqueue_command(
        "work", dsn="postgresql://x@127.0.0.1:1/x", env={"PGQUEUE_APP": "tests.jobs"}
    )
    assert result.returncode == 1  # got past the options and the import, to the database
    assert "cannot reach the database" in result.stderr


def test_demo_without_any_dsn_starts_the_embedded_server() -> None:
    directory = Path(tempfile.mkdtemp(prefix="pgq-"))  # short: the socket lives in it
    try:
        result = pgqueue_command("demo", env={"PGQUEUE_EMBEDDED_DIR": str(directory)})
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    assert f"using the embedded PostgreSQL in {directory}" in result.stderr
    assert "database: embedded PostgreSQL" in result.stdout
    assert "completed 4, failed 1" in result.stdout


def test_bad_usage_exits_2() -> None:
    assert pgqueue_command("work").returncode == 2  # no --app
    assert pgqueue_command("work", "--app", "tests.jobs", "--concurrency", "0").returncode == 2


def test_unimportable_app_is_a_clear_error() -> None:
    result = pgqueue_command(
        "work", "--app", "no_such_module_here", dsn="postgresql://x@127.0.0.1:1/x"
    )
    assert result.returncode == 1
    assert "cannot import the app module 'no_such_module_here'" in result.stderr


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (
            ["--heartbeat-interval", "5", "--heartbeat-timeout", "2"],
            "heartbeat_timeout (2s) must be longer than heartbeat_interval (5s)",
        ),
        (["--queues", "tests,no spaces"], "queue name 'no spaces' is invalid"),
        (["--queue-limits", "bad name=3"], "queue name 'bad name' is invalid"),
        (["--blocked-loop-timeout", "0"], "--blocked-loop-timeout"),
        (["--poll-interval", "inf"], "--poll-interval must be a finite number of seconds"),
        (["--heartbeat-timeout", "nan"], "--heartbeat-timeout must be a finite number"),
        (["--timeout", "1e300"], "--timeout must be at most a century"),
    ],
)
@pytest.mark.parametrize("processes", ["1", "2"])
def test_work_checks_its_options_before_it_connects_or_starts_workers(
    flags: list[str], says: str, processes: str
) -> None:
    # Nothing listens on port 1: a connection attempt would fail with "cannot reach".
    result = pgqueue_command(
        "work", "--app", "tests.jobs", "--workers", processes, *flags,
        dsn="postgresql://nobody@127.0.0.1:1/none",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "cannot reach" not in result.stderr
    assert "worker processes" not in result.stderr  # no supervisor started
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "malformed",
    [
        "postgresql://u:S3cr3t@host:notaport/x",
        "postgresql://u:S3cr3t@h/x?sslmode=bogus",
        "host=localhost dbname=x password=S3cr3t",
    ],
)
def test_a_malformed_dsn_in_the_environment_is_one_line_and_exit_2(malformed: str) -> None:
    for command in (("list",), ("work", "--app", "tests.jobs")):
        result = pgqueue_command(*command, dsn=malformed)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("pgqueue: error: PGQUEUE_DSN '")
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert "S3cr3t" not in result.stdout + result.stderr


async def test_enqueue_of_a_type_the_app_does_not_register_exits_2_writing_nothing(
    dsn: str,
) -> None:
    refused = pgqueue_command("enqueue", "tests.jobs.Nowhere", "--app", "tests.jobs", dsn=dsn)
    unchecked = pgqueue_command(
        "enqueue", "tests.jobs.Nowhere", "--app", "tests.jobs", "--unchecked", dsn=dsn
    )

    assert refused.returncode == 2
    assert refused.stderr.startswith("pgqueue: error: no job class is registered as ")
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert (unchecked.returncode, unchecked.stderr) == (0, "")
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM pgqueue.jobs") == 1
    finally:
        await connection.close()


# --- a closed pipe (| head) ends a command quietly, as it ends other Unix tools ------------


def _buffered(env: dict[str, str]) -> dict[str, str]:
    """``env`` with stdout block-buffered, as it is for users (this machine may set
    PYTHONUNBUFFERED, under which nothing is ever left to flush at exit)."""
    return {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}


def into_a_closed_pipe(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with stdout a pipe whose reader is gone before it writes: its first
    write (or its flush at exit) fails."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [sys.executable, *args],
            cwd=REPO,
            env=env,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(writer)


async def _job_count(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM pgqueue.jobs"))
    finally:
        await connection.close()


async def test_status_piped_to_head_ends_quietly_with_the_status_of_sigpipe(
    dsn: str, queue: Queue
) -> None:
    # A payload far larger than a pipe's buffer: the command is still writing when head exits.
    job_id = await queue.enqueue(Echo(text="x" * 2_000_000))
    pipeline = (
        f"set -o pipefail; {shlex.quote(sys.executable)} -m pgqueue status {job_id} | head -1"
    )

    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", pipeline],
        cwd=REPO,
        env=_buffered(environment(dsn)),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert (result.returncode, result.stderr) == (141, "")
    assert result.stdout == f"id            {job_id}\n"
    assert await _job_count(dsn) == 1


@pytest.mark.parametrize("buffering", ["buffered", "unbuffered"])
@pytest.mark.parametrize("command", [["list"], ["dlq", "--json"], ["status", "1", "--json"]])
async def test_a_command_whose_reader_has_gone_exits_141_saying_nothing(
    dsn: str, queue: Queue, command: list[str], buffering: str
) -> None:
    env = environment(dsn)
    env = _buffered(env) if buffering == "buffered" else {**env, "PYTHONUNBUFFERED": "1"}
    await queue.enqueue(Echo(text="x"))

    result = await asyncio.to_thread(into_a_closed_pipe, ["-m", "pgqueue", *command], env)

    assert (result.returncode, result.stderr) == (141, "")
    assert await _job_count(dsn) == 1


def test_output_still_buffered_at_a_closed_pipe_is_dropped_without_a_word() -> None:
    # What the commands print is flushed line by line, but whatever is still buffered when
    # the pipe closes must not make the flush at exit print "Exception ignored ...".
    probe = "import sys; from pgqueue.cli import _end_at_closed_pipe as end; print('x'); end()"
    result = into_a_closed_pipe(["-c", probe], _buffered(environment(None)))

    assert (result.returncode, result.stderr) == (141, "")
