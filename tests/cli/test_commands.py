"""The operator commands through click's runner, against the real database."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from click.testing import CliRunner, Result

from pgqueue import Queue
from pgqueue.cli import jobs as job_commands
from pgqueue.cli import main
from tests.factories import count, status_of
from tests.jobs import AlwaysFails, Echo, Note

Invoke = Callable[..., Coroutine[Any, Any, Result]]


@pytest.fixture
def pgqueue(dsn: str) -> Invoke:
    """Run ``pgqueue ARGS --dsn <the test database>`` (in a thread: it runs its own loop)."""

    async def invoke(*args: str, input: str | None = None) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, main, [*args, "--dsn", dsn], input)

    return invoke


async def fail(db: asyncpg.Connection, *ids: int) -> None:
    await db.execute(
        "UPDATE pgqueue.jobs SET status = 'failed', attempts = 1, finished_at = now(),"
        " last_error = 'RuntimeError: boom' WHERE id = ANY($1)",
        list(ids),
    )


async def test_list_shows_each_queue_as_json_and_as_plain_rows(
    pgqueue: Invoke, queue: Queue, db: asyncpg.Connection
) -> None:
    first, _ = await queue.enqueue_batch([Echo(text="a"), Echo(text="b")])
    await queue.enqueue(Echo(text="later"), delay=3600, queue="other")
    await fail(db, first)

    result = await pgqueue("list", "--json")
    assert result.exit_code == 0, result.output
    by_queue = {row["queue"]: row for row in json.loads(result.stdout)}
    assert {k: by_queue["tests"][k] for k in ("pending", "failed", "scheduled")} == {
        "pending": 1,
        "failed": 1,
        "scheduled": 0,
    }
    assert by_queue["tests"]["oldest_pending_seconds"] >= 0
    assert (by_queue["other"]["scheduled"], by_queue["other"]["oldest_pending_seconds"]) == (
        1,
        None,
    )

    plain = (await pgqueue("list")).stdout.splitlines()
    assert plain[0].split("\t")[:3] == ["queue", "pending", "sched"]
    assert [line.split("\t")[0] for line in plain[1:]] == ["other", "tests"]


async def test_dlq_lists_failed_jobs_newest_first_with_filters(
    pgqueue: Invoke, queue: Queue, db: asyncpg.Connection
) -> None:
    ids = await queue.enqueue_batch([Echo(text="a"), AlwaysFails(), Echo(text="c")])
    await fail(db, *ids[:2])

    everything = json.loads((await pgqueue("dlq", "--json")).stdout)
    assert sorted(job["id"] for job in everything) == ids[:2]
    assert {job["last_error"] for job in everything} == {"RuntimeError: boom"}
    only_echo = json.loads((await pgqueue("dlq", "--json", "--job-type", "tests.jobs.Echo")).stdout)
    assert [job["id"] for job in only_echo] == [ids[0]]
    assert len(json.loads((await pgqueue("dlq", "--json", "--limit", "1")).stdout)) == 1


async def test_retry_by_id_and_all_failed_and_its_errors(
    pgqueue: Invoke, queue: Queue, db: asyncpg.Connection
) -> None:
    ids = await queue.enqueue_batch([Echo(text="a"), Echo(text="b"), Echo(text="c")])
    await fail(db, ids[0], ids[1])

    assert (await pgqueue("retry", str(ids[0]))).exit_code == 0
    assert await status_of(db, ids[0]) == "pending"
    done = await pgqueue("retry", str(ids[2]))  # still pending
    assert (done.exit_code, "only failed or cancelled" in done.stderr) == (1, True)
    unknown = await pgqueue("retry", "424242")
    assert (unknown.exit_code, unknown.stderr.strip()) == (
        1,
        "pgqueue: error: no job with id 424242",
    )
    everything = await pgqueue("retry", "--all-failed", "--queue", "tests")
    assert (everything.exit_code, everything.stdout.strip()) == (0, "retried 1 failed jobs")
    assert await status_of(db, ids[1]) == "pending"
    assert (await pgqueue("retry")).exit_code == 2  # neither ids nor --all-failed
    assert (await pgqueue("retry", "1", "--all-failed")).exit_code == 2


async def test_cancel_and_status(pgqueue: Invoke, queue: Queue, db: asyncpg.Connection) -> None:
    job_id = await queue.enqueue(Echo(text="x", numbers=[1]))

    assert (await pgqueue("cancel", str(job_id))).stdout.strip() == f"job {job_id} cancelled"
    again = await pgqueue("cancel", str(job_id))
    assert (again.exit_code, "already cancelled" in again.stderr) == (1, True)
    record = json.loads((await pgqueue("status", str(job_id), "--json")).stdout)
    assert (record["status"], record["payload"], record["errors"]) == (
        "cancelled",
        {"text": "x", "numbers": [1]},
        [],
    )
    assert "status        cancelled" in (await pgqueue("status", str(job_id))).stdout
    assert (await pgqueue("status", "424242")).exit_code == 1


async def test_enqueue_by_name_validates_registered_types_and_parses_delays(
    pgqueue: Invoke, db: asyncpg.Connection
) -> None:
    result = await pgqueue(
        "enqueue", "reports.build", "--payload", '{"day": 1}', "--delay", "10m", "--json"
    )
    job_id = json.loads(result.stdout)["id"]
    row = await db.fetchrow(
        "SELECT job_type, payload::text, queue, run_at - now() > interval '9 minutes' AS later"
        " FROM pgqueue.jobs WHERE id = $1",
        job_id,
    )
    assert tuple(row) == ("reports.build", '{"day": 1}', "default", True)

    registered = await pgqueue(
        "enqueue", "tests.jobs.Note", "--payload", '{"log_path": "/tmp/x"}', "--app", "tests.jobs"
    )
    assert registered.exit_code == 0, registered.output
    assert (
        await db.fetchval("SELECT queue FROM pgqueue.jobs WHERE job_type = 'tests.jobs.Note'")
        == "tests"
    )
    invalid = await pgqueue("enqueue", "tests.jobs.Note", "--payload", "{}", "--app", "tests.jobs")
    assert (invalid.exit_code, "log_path" in invalid.stderr) == (2, True)  # bad input
    assert (await pgqueue("enqueue", "x", "--payload", "{not json")).exit_code == 2
    assert (await pgqueue("enqueue", "x", "--delay", "soon")).exit_code == 2
    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs") == 2


async def test_clear_asks_on_a_terminal_and_deletes_only_the_status_asked_for(
    pgqueue: Invoke, queue: Queue, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await queue.enqueue_batch([Echo(text="a"), Echo(text="b"), Note(log_path="/dev/null")])
    await fail(db, ids[0])
    monkeypatch.setattr(job_commands, "is_terminal", lambda: True)

    declined = await pgqueue("clear", input="n\n")
    assert declined.exit_code == 1
    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs") == 3
    accepted = await pgqueue("clear", "--status", "failed", input="y\n")
    assert "deleted 1 failed jobs of every queue" in accepted.stdout
    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs") == 2

    monkeypatch.setattr(job_commands, "is_terminal", lambda: False)
    assert (await pgqueue("clear")).exit_code == 2  # no terminal, no --yes
    assert (
        await pgqueue("clear", "--yes")
    ).stdout.strip() == "deleted 2 pending jobs of every queue"
    assert await db.fetchval("SELECT count(*) FROM pgqueue.jobs") == 0


async def test_workers_lists_each_worker_with_the_jobs_it_holds(
    pgqueue: Invoke, queue: Queue, db: asyncpg.Connection
) -> None:
    worker_id = uuid4()
    await db.execute(
        "INSERT INTO pgqueue.workers (id, host, pid, queues, concurrency)"
        " VALUES ($1, 'box', 7, '{tests}', 4)",
        worker_id,
    )
    job_id = await queue.enqueue(Echo(text="x"))
    await db.execute(
        "UPDATE pgqueue.jobs SET status = 'running', worker_id = $1 WHERE id = $2",
        worker_id,
        job_id,
    )

    [worker] = json.loads((await pgqueue("workers", "--json")).stdout)
    assert (worker["id"], worker["host"], worker["job_ids"]) == (str(worker_id), "box", [job_id])
    assert worker["heartbeat_timeout"] is None  # registered as code before revision 0008 does

    await db.execute("UPDATE pgqueue.workers SET heartbeat_timeout = interval '45 s'")
    header, row = (await pgqueue("workers")).stdout.splitlines()
    lease = dict(zip(header.split("\t"), row.split("\t"), strict=True))["lease"]
    assert lease == "45s"


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:S3cret@127.0.0.1:1/x",
        "postgresql://u:S3cret@db.invalid:6543/x",
        "postgresql://u:S3cret@127.0.0.1:1,127.0.0.1:2/x",  # a host list
    ],
)
def test_unreachable_database_is_one_line_naming_host_and_port_and_exit_1(dsn: str) -> None:
    result = CliRunner().invoke(main, ["list", "--dsn", dsn])
    address = dsn.split("@")[1].split("/")[0]
    assert result.exit_code == 1
    assert result.stderr.startswith(f"pgqueue: error: cannot reach the database at {address}")
    assert "check that PostgreSQL runs there" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "S3cret" not in result.output


def test_the_cli_registers_no_job_class_of_its_own() -> None:
    """A `pgqueue work` without --queues works every queue its registered classes name: the
    CLI itself (the bench command included) must register none, or workers would claim them."""
    probe = "import pgqueue.cli; from pgqueue.registry import registry; print(registry.names())"
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert shown.stdout.strip() == "[]"


MALFORMED_DSNS = [
    ("postgresql://u:S3cret@host:notaport/x", "the port 'notaport' of 'host:notaport'"),
    ("postgresql://u:S3cret@h/x?sslmode=bogus", "sslmode='bogus' must be one of disable, "),
    ("host=localhost dbname=x password=S3cret", "takes a URL: postgresql://:***@localhost/x"),
]


@pytest.mark.parametrize(("malformed", "problem"), MALFORMED_DSNS)
@pytest.mark.parametrize("given_as", ["--dsn", "PGQUEUE_DSN"])
async def test_a_malformed_dsn_is_one_line_exit_2_and_writes_nothing(
    queue: Queue, db: asyncpg.Connection, malformed: str, problem: str, given_as: str
) -> None:
    await queue.enqueue(Echo(text="before"))
    flags = ["--dsn", malformed] if given_as == "--dsn" else []
    env = {"PGQUEUE_DSN": malformed} if given_as == "PGQUEUE_DSN" else {}
    where = "the DSN" if given_as == "--dsn" else "PGQUEUE_DSN"
    enqueue = ["enqueue", "tests.jobs.Echo", "--payload", '{"text": "x"}', "--app", "tests.jobs"]

    for command in (["list"], ["status", "1"], enqueue):
        result = await asyncio.to_thread(CliRunner().invoke, main, [*command, *flags], env=env)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"pgqueue: error: {where} '")
        assert "is not a usable PostgreSQL URL: " in result.stderr
        assert problem in result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert "S3cret" not in result.output
    assert await count(db) == 1


BAD_ENQUEUE_FLAGS = {
    "delay inf": (["--delay", "inf"], "the duration must be a finite number of seconds, got 'inf'"),
    "delay nan": (["--delay", "nan"], "the duration must be a finite number of seconds, got 'nan'"),
    "delay 1e300": (["--delay", "1e300"], "the duration must be at most a century (36525 days)"),
    "delay 99999999d": (["--delay", "99999999d"], "at most a century (36525 days), got '99999"),
    "priority 99999": (["--priority", "99999"], "priority must be an int from -32767 to 32767"),
    "priority 2**70": (["--priority", str(2**70)], "priority must be an int from -32767 to"),
    "depends-on 2**70": (["--depends-on", str(2**70)], "depends_on must hold job ids (positive"),
}


async def test_enqueue_with_app_refuses_a_type_the_app_does_not_register_with_exit_2(
    pgqueue: Invoke, db: asyncpg.Connection
) -> None:
    result = await pgqueue("enqueue", "tests.jobs.Ech", "--payload", "{}", "--app", "tests.jobs")

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(  # the names other tests registered too follow
        "pgqueue: error: no job class is registered as 'tests.jobs.Ech' (did you mean "
        "'tests.jobs.Echo'? registered: "
    )
    assert result.stderr.endswith(
        "check the name and --app tests.jobs, or pass --unchecked to enqueue it for workers "
        "that know it\n"
    )
    assert len(result.stderr.splitlines()) == 1
    assert await count(db) == 0


async def test_enqueue_unchecked_writes_a_type_only_another_service_knows(
    pgqueue: Invoke, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGQUEUE_APP", "tests.jobs")  # --app from the environment checks too
    refused = await pgqueue("enqueue", "billing.Invoice", "--payload", '{"n": 1}')
    assert (refused.exit_code, await count(db)) == (2, 0), refused.output

    result = await pgqueue("enqueue", "billing.Invoice", "--payload", '{"n": 1}', "--unchecked")
    assert result.exit_code == 0, result.output
    row = await db.fetchrow("SELECT job_type, payload::text, queue FROM pgqueue.jobs")
    assert tuple(row) == ("billing.Invoice", '{"n": 1}', "default")

    # --unchecked skips only the name's check: a registered class still validates its payload.
    invalid = await pgqueue("enqueue", "tests.jobs.Echo", "--payload", "{}", "--unchecked")
    assert (invalid.exit_code, "text: Field required" in invalid.stderr) == (2, True)
    assert await count(db) == 1


@pytest.mark.parametrize(("flags", "message"), BAD_ENQUEUE_FLAGS.values(), ids=BAD_ENQUEUE_FLAGS)
@pytest.mark.parametrize(
    "job", [["elsewhere.Job"], ["tests.jobs.Echo", "--app", "tests.jobs"]], ids=["by name", "app"]
)
async def test_enqueue_refuses_nan_infinite_and_out_of_range_flags_with_exit_2(
    pgqueue: Invoke, db: asyncpg.Connection, job: list[str], flags: list[str], message: str
) -> None:
    result = await pgqueue("enqueue", *job, "--payload", '{"text": "x"}', *flags)

    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert await count(db) == 0


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (["elsewhere.Job"], "the elsewhere.Job payload is not JSON: Out of range float values"),
        (
            ["tests.jobs.Echo", "--app", "tests.jobs"],
            "as tests.jobs.Echo: numbers.0: Input should be a finite number",
        ),
    ],
    ids=["by name", "app"],
)
async def test_enqueue_refuses_nan_in_the_payload_with_exit_2(
    pgqueue: Invoke, db: asyncpg.Connection, job: list[str], message: str
) -> None:
    result = await pgqueue("enqueue", *job, "--payload", '{"text": "x", "numbers": [NaN]}')

    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert await count(db) == 0


@pytest.mark.parametrize("keep", ["inf", "nan", "1e300"])
async def test_prune_refuses_an_infinite_or_huge_retention(pgqueue: Invoke, keep: str) -> None:
    result = await pgqueue("prune", "--keep-completed", keep)

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--keep-completed': the duration must be" in result.stderr
