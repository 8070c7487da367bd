"""The queue commands through click's runner, against the real database: pause, resume,
limit, what list shows of them, and the limit flags of work (refused before anything runs)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import asyncpg
import click
import pytest
from click.testing import CliRunner, Result

from pgqueue import Queue, QueueLimit
from pgqueue.cli import main
from pgqueue.cli.work import queue_limits_from
from tests.jobs import Echo

Invoke = Callable[..., Coroutine[Any, Any, Result]]


@pytest.fixture
def pgqueue(dsn: str) -> Invoke:
    """Run ``pgqueue ARGS --dsn <the test database>`` (in a thread: it runs its own loop)."""

    async def invoke(*args: str) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, main, [*args, "--dsn", dsn])

    return invoke


async def settings_of(db: asyncpg.Connection, name: str) -> tuple[Any, ...] | None:
    row = await db.fetchrow(
        "SELECT paused, concurrency_limit, rate_limit, rate_period FROM pgqueue.queues"
        " WHERE name = $1",
        name,
    )
    return None if row is None else tuple(row)


async def test_pause_and_resume_keep_the_queues_limits(
    pgqueue: Invoke, db: asyncpg.Connection
) -> None:
    assert (await pgqueue("limit", "emails", "--concurrency", "3")).exit_code == 0

    paused = await pgqueue("pause", "emails")
    assert (paused.exit_code, paused.stdout) == (0, "queue emails paused\n")
    assert await settings_of(db, "emails") == (True, 3, None, None)
    again = await pgqueue("pause", "emails")
    assert again.exit_code == 0

    resumed = await pgqueue("resume", "emails")
    assert (resumed.exit_code, resumed.stdout) == (0, "queue emails resumed\n")
    assert await settings_of(db, "emails") == (False, 3, None, None)

    fresh = await pgqueue("resume", "reports")  # a queue never seen: open, and now has a row
    assert fresh.exit_code == 0
    assert await settings_of(db, "reports") == (False, None, None, None)


@pytest.mark.parametrize("command", ["pause", "resume", "limit"])
async def test_queue_commands_refuse_a_bad_queue_name_in_one_line(
    pgqueue: Invoke, db: asyncpg.Connection, command: str
) -> None:
    result = await pgqueue(command, "no spaces")
    assert result.exit_code == 2  # bad input
    assert result.stderr == (
        "pgqueue: error: queue name 'no spaces' is invalid: use 1 to 63 letters, digits, '_', "
        "'-' or '.'\n"
    )
    assert await db.fetchval("SELECT count(*) FROM pgqueue.queues") == 0


async def test_limit_sets_both_limits_and_removes_those_not_given(
    pgqueue: Invoke, db: asyncpg.Connection
) -> None:
    await pgqueue("pause", "emails")

    both = await pgqueue("limit", "emails", "--concurrency", "3", "--rate", "100/1m")
    assert (both.exit_code, both.stdout) == (0, "queue emails: 3 running, 100/1m started\n")
    assert await settings_of(db, "emails") == (True, 3, 100, timedelta(minutes=1))

    rate_only = await pgqueue("limit", "emails", "--rate", "5/500ms")
    assert rate_only.stdout == "queue emails: 5/500ms started\n"
    assert await settings_of(db, "emails") == (True, None, 5, timedelta(milliseconds=500))

    concurrency_only = await pgqueue("limit", "emails", "--concurrency", "2")
    assert concurrency_only.stdout == "queue emails: 2 running\n"
    assert await settings_of(db, "emails") == (True, 2, None, None)

    none = await pgqueue("limit", "emails")
    assert (none.exit_code, none.stdout) == (0, "queue emails: no limits\n")
    assert await settings_of(db, "emails") == (True, None, None, None)  # still paused


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "fast"], "rate 'fast' must look like 100/1s, 600/1m or 10/2.5 (seconds)"),
        (["--rate", "100/m"], "rate '100/m' must look like 100/1s"),
        (["--rate", "100"], "rate '100' must look like 100/1s"),
        (["--rate", "0/1s"], "rate limit must be an int from 1 to 2147483647, got 0"),
        (["--rate", "5/0s"], "rate period must be 1 ms to 10 years"),
        (["--concurrency", "0"], "0 is not in the range 1<=x<=2147483647"),
        (["--concurrency", "two"], "'two' is not a valid integer"),
        (["--rate", "1/99999999999d"], "rate period"),
        (["--concurrency", "3000000000"], "3000000000"),
    ],
)
async def test_limit_refuses_bad_values_with_exit_2_and_changes_nothing(
    pgqueue: Invoke, db: asyncpg.Connection, args: list[str], message: str
) -> None:
    await pgqueue("limit", "emails", "--concurrency", "3", "--rate", "10/1s")

    result = await pgqueue("limit", "emails", *args)

    assert result.exit_code == 2, result.output
    assert args[0] in result.stderr
    assert message in " ".join(result.stderr.split())  # click wraps long lines
    assert "Traceback" not in result.output
    assert await settings_of(db, "emails") == (False, 3, 10, timedelta(seconds=1))


async def test_list_shows_paused_queues_limits_and_blocked_jobs(
    pgqueue: Invoke, queue: Queue, db: asyncpg.Connection
) -> None:
    parent = await queue.enqueue(Echo(text="parent"), queue="limited")
    await queue.enqueue(Echo(text="child"), queue="limited", depends_on=[parent])
    await queue.enqueue(Echo(text="mail"), queue="emails")
    await pgqueue("pause", "emails")
    await pgqueue("limit", "limited", "--concurrency", "3", "--rate", "100/1m")
    await pgqueue("limit", "quiet", "--rate", "5/2.5")  # settings and no jobs: listed too

    result = await pgqueue("list", "--json")
    assert result.exit_code == 0, result.output
    fields = ("paused", "concurrency_limit", "rate_limit", "rate_period", "pending", "blocked")
    shown = {
        row["queue"]: tuple(row[field] for field in fields) for row in json.loads(result.stdout)
    }
    assert shown == {
        "emails": (True, None, None, None, 1, 0),
        "limited": (False, 3, 100, "PT1M", 1, 1),
        "quiet": (False, None, 5, "PT2.5S", 0, 0),
    }

    plain = (await pgqueue("list")).stdout.splitlines()
    header = plain[0].split("\t")
    rows = {
        line.split("\t")[0]: dict(zip(header, line.split("\t"), strict=True)) for line in plain[1:]
    }
    assert sorted(rows) == ["emails (paused)", "limited", "quiet"]
    assert rows["limited"]["limits"] == "3 running, 100/60s"
    assert (rows["limited"]["pending"], rows["limited"]["blocked"]) == ("1", "1")
    assert rows["quiet"]["limits"] == "5/2.5s"
    assert rows["emails (paused)"]["limits"] == "-"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue-limits", "emails"], "'emails' must look like QUEUE=VALUE"),
        (["--queue-limits", "=3"], "'=3' must look like QUEUE=VALUE"),
        (["--queue-limits", "emails=0"], "concurrency limit must be an int from 1 to 2147483647"),
        (["--queue-limits", "emails=-2"], "concurrency limit must be an int from 1 to 2147483647"),
        (["--queue-limits", "emails=x"], "'emails=x': the limit must be a whole number of jobs"),
        (["--queue-limits", "ok=2,emails=2.5"], "'emails=2.5'"),
        (["--queue-rates", "emails=fast"], "rate 'fast' must look like 100/1s"),
        (["--queue-rates", "emails=100"], "rate '100' must look like 100/1s"),
        (["--queue-rates", "emails=0/1s"], "rate limit must be an int from 1 to 2147483647, got 0"),
        (["--queue-rates", "emails=5/0"], "rate period must be 1 ms to 10 years"),
        (["--queue-rates", "emails"], "'emails' must look like QUEUE=VALUE"),
    ],
)
async def test_work_refuses_bad_limit_flags_with_exit_2_before_starting(
    pgqueue: Invoke, db: asyncpg.Connection, args: list[str], message: str
) -> None:
    result = await pgqueue("work", "--app", "tests.jobs", *args)

    assert result.exit_code == 2, result.output
    assert args[0] in result.stderr
    assert message in " ".join(result.stderr.split())
    assert await db.fetchval("SELECT count(*) FROM pgqueue.queues") == 0
    assert await db.fetchval("SELECT count(*) FROM pgqueue.workers") == 0


def test_queue_limits_from_merges_concurrency_and_rate_per_queue() -> None:
    def plain(limits: dict[str, QueueLimit]) -> dict[str, tuple[Any, ...]]:
        return {name: (q.concurrency, q.rate, q.period) for name, q in limits.items()}

    second = timedelta(seconds=1)
    assert plain(queue_limits_from(" emails=10 , reports=2", "emails=100/1m,thumbs=3/500ms")) == {
        "emails": (10, 100, timedelta(minutes=1)),
        "reports": (2, None, second),
        "thumbs": (None, 3, timedelta(milliseconds=500)),
    }
    assert queue_limits_from(None, None) == {}
    assert queue_limits_from("", " , ") == {}
    assert plain(queue_limits_from("emails=1,emails=4", None)) == {"emails": (4, None, second)}
    with pytest.raises(click.BadParameter, match="'x=0'"):
        queue_limits_from("x=0", None)
