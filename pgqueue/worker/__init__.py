"""The worker: fetch loop, execution, outcomes, LISTEN, heartbeat."""

from pgqueue.worker.worker import Worker

__all__ = ["Worker"]
