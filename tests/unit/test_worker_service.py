"""The worker's service shape and its held jobs, without a database."""

from __future__ import annotations

import asyncio

from pgqueue.rows import ClaimedJob
from pgqueue.worker.service import ErrorPause, Service
from pgqueue.worker.slots import Slots


def _job(job_id: int) -> ClaimedJob:
    return ClaimedJob(
        id=job_id,
        queue="default",
        job_type="noop",
        payload="{}",
        attempt=1,
        max_attempts=None,
        retry_backoff=None,
        depends_on=(),
    )


async def _forever() -> None:
    await asyncio.Event().wait()


def test_an_error_pause_doubles_up_to_its_longest_and_resets() -> None:
    pause = ErrorPause(first=0.01, least=0.1, longest=0.5)

    seen = [pause.lengthen() for _ in range(5)]
    pause.reset()

    assert seen == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert pause.seconds == 0.01


class _Flaky(Service[int]):
    task_name = "test-flaky"

    def __init__(self) -> None:
        self.rounds = 0
        self.pauses: list[float] = []
        self.fourth_round = asyncio.Event()

    async def run_once(self) -> int:
        self.rounds += 1
        if self.rounds == 4:
            self.fourth_round.set()
        if self.rounds == 2:
            raise RuntimeError("the database is away")
        return self.rounds

    def _pause_after(self, outcome: int) -> float:
        return float(outcome)

    async def _failed(self, error: Exception) -> float:
        return -1.0

    async def _wait(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await asyncio.sleep(0)


async def test_a_service_runs_rounds_until_stopped_and_carries_on_after_a_failure() -> None:
    service = _Flaky()

    await service.start()
    await asyncio.wait_for(service.fourth_round.wait(), 5)
    await service.stop()

    assert service.pauses[:3] == [1.0, -1.0, 3.0]


async def test_slots_forget_a_cancelled_ready_job_and_stop_a_cancelled_running_one() -> None:
    slots = Slots(concurrency=1)
    freed: list[int] = []
    slots.on_freed = lambda: freed.append(len(slots.active))
    running, ready = _job(1), _job(2)
    slots.claimed([running, ready])
    slots.start(running, _forever())
    slots.ready.append(ready)
    task = slots.active[1]

    slots.cancel(2)
    slots.cancel(1)
    # Slots' own done-callback was added first, so it has run once the wait returns.
    await asyncio.wait([task], timeout=5)

    assert (list(slots.ready), slots.active, slots.held, freed) == ([], {}, set(), [0])
    assert slots.free() == 1
