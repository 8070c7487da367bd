"""The jobs ``pgqueue demo`` runs. Imported by that command only, so no other worker sees them."""

from __future__ import annotations

import asyncio
import time

from pgqueue.job import Job

DEMO_QUEUE = "pgqueue-demo"


class Greet(Job, queue=DEMO_QUEUE, name="demo.greet"):
    name: str

    async def handle(self) -> str:
        await asyncio.sleep(0.05)
        return f"Hello, {self.name}!"


class Thumbnail(Job, queue=DEMO_QUEUE, name="demo.thumbnail"):
    """A plain ``def`` handler: it runs in a thread, so blocking work does not stall the loop."""

    width: int
    height: int

    def handle(self) -> dict[str, int]:
        time.sleep(0.1)
        return {"width": self.width // 4, "height": self.height // 4}


class FlakyUpload(Job, queue=DEMO_QUEUE, name="demo.flaky_upload", max_retries=3):
    """Fails its first attempt, as a flaky network call would, then succeeds on the retry."""

    path: str

    async def handle(self) -> str:
        if self.context.attempt == 1:
            raise ConnectionError(f"upload of {self.path} timed out")
        return f"uploaded {self.path} on attempt {self.context.attempt}"


class ChargeCard(Job, queue=DEMO_QUEUE, name="demo.charge_card", max_retries=1):
    """Fails every attempt: after its last one it lands in the dead letter queue (failed)."""

    card: str

    async def handle(self) -> None:
        raise ValueError(f"card {self.card} was declined")
