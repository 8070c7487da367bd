"""In-process Workers and the queue settings they share: the order jobs run in (priority),
paused queues, cluster-wide concurrency and rate limits, and the wake-ups that keep idle workers
from waiting out their poll interval (or from spinning)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from pgqueue import InvalidQueueName, Queue, QueueLimit, Worker
from pgqueue.rows import ClaimedJob
from tests.factories import count, eventually, lines, running
from tests.jobs import Note, QueueLimitHold, QueueLimitNap, QueueOrderProbe

NAP = QueueLimitNap.job_options.name
HOLD = QueueLimitHold.job_options.name


class Claims:
    """What a worker on this Queue asks of its store: how many jobs each claim got, and what
    seconds_until_next_job answered (None: sleep until woken). The calls still run against the
    database."""

    def __init__(self, queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[int] = []
        self.waits: list[float | None] = []
        store = queue.store
        claim_jobs, seconds_until_next_job = store.claim_jobs, store.seconds_until_next_job

        async def counted_claim(**kwargs: Any) -> list[ClaimedJob]:
            claimed = await claim_jobs(**kwargs)
            self.made.append(len(claimed))
            return claimed

        async def counted_wait(**kwargs: Any) -> float | None:
            seconds = await seconds_until_next_job(**kwargs)
            self.waits.append(seconds)
            return seconds

        monkeypatch.setattr(store, "claim_jobs", counted_claim)
        monkeypatch.setattr(store, "seconds_until_next_job", counted_wait)

    @property
    def calls(self) -> int:
        return len(self.made)

    @property
    def jobs(self) -> int:
        return sum(self.made)

    async def asleep(self) -> None:
        """Wait until the worker found nothing it may claim and sleeps until woken (or its
        poll interval)."""
        await eventually(lambda: None in self.waits, until=bool, within=5)


async def max_running_until_done(
    db: asyncpg.Connection, queue_name: str, total: int, within: float = 20
) -> int:
    """Sample the queue's running jobs back to back until ``total`` have completed; the most
    seen at once."""
    deadline = time.monotonic() + within
    most = 0
    while True:
        row = await db.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'running') AS running,"
            " count(*) FILTER (WHERE status = 'completed') AS completed"
            " FROM pgqueue.jobs WHERE queue = $1",
            queue_name,
        )
        most = max(most, row["running"])
        if row["completed"] == total:
            return most
        if time.monotonic() > deadline:
            raise AssertionError(f"{row['completed']} of {total} completed within {within}s")


async def limits_of(db: asyncpg.Connection, queue_name: str) -> tuple[Any, ...] | None:
    row = await db.fetchrow(
        "SELECT paused, concurrency_limit, rate_limit, rate_period FROM pgqueue.queues"
        " WHERE name = $1",
        queue_name,
    )
    return None if row is None else tuple(row)


async def hold_a_slot(queue: Queue, db: asyncpg.Connection, queue_name: str) -> tuple[int, UUID]:
    """Another worker (a registered, heartbeating row: nobody rescues its job) runs one job
    of ``queue_name``; returns the job and that worker's id."""
    other = uuid4()
    await db.execute(
        "INSERT INTO pgqueue.workers (id, host, pid, queues, concurrency)"
        " VALUES ($1, 'elsewhere', 1, ARRAY[$2], 1)",
        other,
        queue_name,
    )
    job_id = await queue.enqueue(QueueLimitNap(), queue=queue_name)
    [held] = await queue.store.claim_jobs(
        queues=[queue_name], job_types=[NAP], worker_id=other, max_jobs=1, connection=db
    )
    assert held.id == job_id
    return job_id, other


# --- priority ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("worker_concurrency", "queue_concurrency"), [(1, None), (5, 1)], ids=["worker", "queue"]
)
async def test_one_at_a_time_jobs_run_by_priority_then_run_at_then_id(
    queue: Queue,
    db: asyncpg.Connection,
    tmp_path: Path,
    worker_concurrency: int,
    queue_concurrency: int | None,
) -> None:
    """One job at a time, by the worker's own concurrency or by the queue's limit."""
    log = tmp_path / "order.log"
    if queue_concurrency is not None:
        await queue.set_queue_limits("ordered", concurrency=queue_concurrency)
    now = await db.fetchval("SELECT now()")

    def probe(label: str) -> QueueOrderProbe:
        return QueueOrderProbe(label=label, log_path=str(log))

    await queue.enqueue(probe("low"), priority=-5, run_at=now - timedelta(hours=3))
    await queue.enqueue(probe("default, older"), run_at=now - timedelta(hours=2))
    await queue.enqueue(probe("default, newer"), run_at=now - timedelta(hours=1))
    await queue.dispatch(probe("urgent")).with_priority(100)
    await queue.enqueue_batch(
        [probe("high, first id"), probe("high, second id")], priority=10, run_at=now
    )

    async with running(queue, queues=["ordered"], concurrency=worker_concurrency):
        await eventually(lambda: count(db, "completed"), until=lambda n: n == 6)

    assert lines(log) == [
        "urgent",
        "high, first id",
        "high, second id",
        "default, older",
        "default, newer",
        "low",
    ]
    started = await db.fetch("SELECT result FROM pgqueue.jobs ORDER BY started_at, id")
    assert [row["result"] for row in started] == [f'"{label}"' for label in lines(log)]


async def test_a_higher_priority_job_enqueued_later_overtakes_the_waiting_backlog(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log, release = tmp_path / "order.log", tmp_path / "release"
    blocker = await queue.enqueue(
        QueueLimitHold(log_path=str(log), release_path=str(release)), queue="ordered"
    )
    async with running(queue, queues=["ordered"], concurrency=1):
        await eventually(lambda: lines(log), until=lambda found: found == [f"start {blocker}"])
        await queue.enqueue_batch(
            [QueueOrderProbe(label=f"backlog {n}", log_path=str(log)) for n in range(3)]
        )
        await queue.enqueue(QueueOrderProbe(label="urgent", log_path=str(log)), priority=1)
        release.touch()
        await eventually(lambda: count(db, "completed"), until=lambda n: n == 5)
    assert lines(log)[1:] == ["urgent", "backlog 0", "backlog 1", "backlog 2"]


# --- pause ---------------------------------------------------------------------------------------


async def test_paused_queue_is_not_worked_while_others_run_and_resume_wakes_the_worker(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, release = tmp_path / "runs.log", tmp_path / "release"
    claims = Claims(queue, monkeypatch)
    async with running(queue, queues=["emails", "tests"], concurrency=5, poll_interval=60):
        holding = await queue.enqueue(
            QueueLimitHold(log_path=str(log), release_path=str(release)), queue="emails"
        )
        await eventually(lambda: lines(log), until=lambda found: found == [f"start {holding}"])

        await queue.pause_queue("emails")  # running jobs go on; nothing more is claimed
        paused = await queue.enqueue_batch([Note(log_path=str(log))] * 3, queue="emails")
        other = await queue.enqueue(Note(log_path=str(log)), queue="tests")
        await queue.wait_for(other, 5)  # another queue keeps running
        release.touch()
        await queue.wait_for(holding, 5)

        # The paused jobs are due, yet the idle worker sleeps instead of claiming in a loop.
        claims_before = claims.calls
        await asyncio.sleep(0.5)  # an observation window, not a wait for something to happen
        assert claims.calls - claims_before <= 2
        rows = await db.fetch(
            "SELECT status::text, attempts FROM pgqueue.jobs WHERE id = ANY($1)", paused
        )
        assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 0)] * 3

        await queue.resume_queue("emails")  # NOTIFY: far sooner than the 60 s poll
        for job_id in paused:
            await queue.wait_for(job_id, 5)
    assert sorted(lines(log)[1:]) == sorted(str(job_id) for job_id in [*paused, other])


async def test_worker_started_on_a_paused_queue_claims_nothing_until_resumed(
    queue: Queue, db: asyncpg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "runs.log"
    await queue.pause_queue("emails")
    job_id = await queue.enqueue(Note(log_path=str(log)), queue="emails")
    claims = Claims(queue, monkeypatch)
    async with running(queue, queues=["emails"], poll_interval=60):
        await claims.asleep()
        assert claims.jobs == 0
        assert (
            await queue.store.seconds_until_next_job(
                queues=["emails"], job_types=[Note.job_options.name]
            )
            is None
        )
        assert (await queue.get_job(job_id)).status == "pending"
        await queue.resume_queue("emails")
        await queue.wait_for(job_id, 5)
    assert lines(log) == [str(job_id)]


# --- concurrency limits --------------------------------------------------------------------------


async def test_worker_queue_limits_are_set_at_start_and_cap_its_running_jobs(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue_batch([QueueLimitNap(seconds=0.03)] * 40)
    async with running(queue, queues=["limited"], concurrency=10, queue_limits={"limited": 3}):
        assert await limits_of(db, "limited") == (False, 3, None, None)
        most = await max_running_until_done(db, "limited", 40)
    assert 1 < most <= 3


async def test_worker_queue_limits_take_a_queue_limit_with_a_rate(
    queue: Queue, db: asyncpg.Connection
) -> None:
    limit = QueueLimit(concurrency=2, rate=100, per=timedelta(minutes=1))
    async with running(queue, queues=["limited"], queue_limits={"limited": limit, "other": 7}):
        assert await limits_of(db, "limited") == (False, 2, 100, timedelta(minutes=1))
        assert await limits_of(db, "other") == (False, 7, None, None)


async def test_worker_queue_limits_leave_the_limits_they_do_not_give_as_they_were(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.set_queue_limits("limited", concurrency=9, rate=50, per=timedelta(minutes=1))
    await queue.pause_queue("limited")

    async with running(queue, queues=["limited"], queue_limits={"limited": 3}):
        assert await limits_of(db, "limited") == (True, 3, 50, timedelta(minutes=1))


@pytest.mark.parametrize(
    ("limits", "error", "message"),
    [
        (
            {"limited": 0},
            ValueError,
            "concurrency limit must be an int from 1 to 2147483647, got 0",
        ),
        ({"limited": -1}, ValueError, "concurrency limit must be an int from 1 to 2147483647"),
        ({"bad name": 3}, InvalidQueueName, "queue name 'bad name' is invalid"),
    ],
)
async def test_worker_refuses_bad_queue_limits_when_built(
    queue: Queue, db: asyncpg.Connection, limits: dict[str, int], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        Worker(queue, queue_limits=limits)
    assert await db.fetchval("SELECT count(*) FROM pgqueue.queues") == 0


async def test_two_workers_with_their_own_pools_share_one_concurrency_limit(
    queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    await queue.set_queue_limits("limited", concurrency=4)
    await queue.enqueue_batch([QueueLimitNap(seconds=0.03)] * 80)
    async with (
        Queue.connect(dsn) as first,
        Queue.connect(dsn) as second,
        running(first, queues=["limited"], concurrency=10),
        running(second, queues=["limited"], concurrency=10),
    ):
        most = await max_running_until_done(db, "limited", 80)
    assert 1 < most <= 4  # per worker it would reach 8


async def test_a_job_finishing_elsewhere_in_a_limited_queue_wakes_an_idle_worker(
    queue: Queue, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await queue.set_queue_limits("limited", concurrency=1)
    held, other = await hold_a_slot(queue, db, "limited")
    waiting = await queue.enqueue(QueueLimitNap())
    claims = Claims(queue, monkeypatch)
    async with running(queue, queues=["limited"], poll_interval=60) as worker:
        # It looked, found the queue at its limit and sleeps: at the limit, due jobs do not
        # count as due. Nothing else will wake it (no enqueue, no NOTIFY in flight).
        await claims.asleep()
        assert claims.jobs == 0

        # The other worker's job completes: its NOTIFY, not the 60 s poll, wakes this one.
        assert await queue.store.complete_jobs(
            ids=[held], attempts=[1], results=[None], worker_id=other, connection=db
        ) == [held]
        await queue.wait_for(waiting, 5)
    assert await db.fetchval("SELECT worker_id FROM pgqueue.jobs WHERE id = $1", waiting) == (
        worker.id
    )


# --- rate limits ---------------------------------------------------------------------------------


async def test_rate_limited_worker_starts_at_most_rate_jobs_per_window_and_sleeps_between(
    queue: Queue, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await queue.enqueue_batch([QueueLimitNap()] * 12)
    claims = Claims(queue, monkeypatch)
    limits = {"limited": QueueLimit(rate=5, per=timedelta(seconds=1))}
    # poll_interval 60: only seconds_until_next_job (the next window) can wake it in time.
    async with running(
        queue, queues=["limited"], concurrency=10, poll_interval=60, queue_limits=limits
    ):
        await eventually(lambda: count(db, "completed"), until=lambda n: n == 12, within=10)

    per_window = await db.fetch(
        "SELECT floor(extract(epoch FROM started_at)) AS window, count(*) AS started"
        " FROM pgqueue.jobs GROUP BY 1 ORDER BY 1"
    )
    assert max(row["started"] for row in per_window) == 5
    assert len(per_window) >= 3
    assert claims.jobs == 12
    # Each window: a claim or two when it opens, one after each job finishes; a worker that
    # spun on the used-up window would have claimed every 20 ms (50 a second).
    assert claims.calls <= 12 + 4 * len(per_window)
