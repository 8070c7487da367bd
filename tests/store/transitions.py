"""pgqueue's transitions called in SQL, as the worker calls them, for tests that race them."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import asyncpg

from pgqueue.registry import registry


async def start(db: asyncpg.Connection, job_id: int) -> UUID:
    """Claim ``job_id`` (alone in its queue) through pgqueue.claim_jobs; the worker id."""
    worker_id = uuid4()
    job_queue = await db.fetchval("SELECT queue FROM pgqueue.jobs WHERE id = $1", job_id)
    claimed = await db.fetch(
        "SELECT id FROM pgqueue.claim_jobs(ARRAY[$1], $2, $3, 10)",
        job_queue,
        registry.names(),
        worker_id,
    )
    assert [row["id"] for row in claimed] == [job_id]
    return worker_id


async def complete(connection: asyncpg.Connection, job_id: int, worker_id: UUID) -> list[int]:
    """pgqueue.complete_jobs for one job of attempt 1; the ids it wrote."""
    rows = await connection.fetch(
        "SELECT id FROM pgqueue.complete_jobs(ARRAY[$1::bigint], ARRAY[1], ARRAY['\"ok\"'::jsonb],"
        " $2) AS id",
        job_id,
        worker_id,
    )
    return [row["id"] for row in rows]


async def fail(
    connection: asyncpg.Connection, job_id: int, worker_id: UUID, *, permanent: bool = True
) -> str | None:
    """pgqueue.fail_job for attempt 1, as the executor records it; the new status."""
    error = {
        "attempt": 1,
        "worker_id": str(worker_id),
        "type": "RuntimeError",
        "message": "boom",
        "traceback": "Traceback ...",
    }
    status: str | None = await connection.fetchval(
        "SELECT pgqueue.fail_job($1, 1, $2, $3::jsonb, 'RuntimeError: boom', interval '0', $4, 4)",
        job_id,
        worker_id,
        json.dumps(error),
        permanent,
    )
    return status
