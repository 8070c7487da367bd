"""Signups whose welcome email is a pgqueue job enqueued in the signup's own transaction: the
row and the job commit together, or neither exists.

    export PGQUEUE_DSN=postgresql://postgres@127.0.0.1:5432/postgres
    pgqueue migrate
    uvicorn examples.fastapi_app.app:app
    pgqueue work --app examples.fastapi_app.jobs
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypedDict

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Path, Request, status
from pydantic import BaseModel

from pgqueue import JobNotFound, JobStatus, Queue

from .jobs import SendWelcomeEmail

CREATE_SIGNUPS = """
CREATE TABLE IF NOT EXISTS signups (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    welcome_job_id bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
)
"""


class State(TypedDict):
    pool: asyncpg.Pool
    queue: Queue


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    dsn = os.environ.get("PGQUEUE_DSN")
    if not dsn:
        raise RuntimeError("set PGQUEUE_DSN to the database that `pgqueue migrate` set up")
    async with asyncpg.create_pool(dsn) as pool:
        await pool.execute(CREATE_SIGNUPS)
        # One pool for the app's queries and pgqueue's: Queue(pool) borrows it, never closes it.
        queue = Queue(pool)
        await queue.check_schema()  # fail at start, not at the first request, if not migrated
        yield {"pool": pool, "queue": queue}


app = FastAPI(title="pgqueue FastAPI example", lifespan=lifespan)


def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.state.pool
    return pool


def get_queue(request: Request) -> Queue:
    queue: Queue = request.state.queue
    return queue


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
QueueDep = Annotated[Queue, Depends(get_queue)]


class NewSignup(BaseModel):
    email: str


class SignupCreated(BaseModel):
    signup_id: int
    job_id: int


class JobView(BaseModel):
    id: int
    status: JobStatus
    attempts: int
    result: Any
    last_error: str | None


# With SQLAlchemy, pass its session instead (an AsyncSession over asyncpg, or a sync Session):
#     async with AsyncSession(engine) as session, session.begin():
#         job_id = await queue.enqueue(SendWelcomeEmail(email=...), connection=session)
#         session.add(SignupRow(email=..., welcome_job_id=job_id))
@app.post("/signups", status_code=status.HTTP_201_CREATED)
async def create_signup(signup: NewSignup, pool: PoolDep, queue: QueueDep) -> SignupCreated:
    try:
        async with pool.acquire() as connection, connection.transaction():
            # The job goes first so that the row can keep its id; either order commits together.
            job_id = await queue.enqueue(
                SendWelcomeEmail(email=signup.email), connection=connection
            )
            signup_id: int = await connection.fetchval(
                "INSERT INTO signups (email, welcome_job_id) VALUES ($1, $2) RETURNING id",
                signup.email,
                job_id,
            )
    except asyncpg.UniqueViolationError:
        # The transaction rolled back, and the job with it: no row, and no worker was woken.
        raise HTTPException(status.HTTP_409_CONFLICT, f"{signup.email} already signed up") from None
    return SignupCreated(signup_id=signup_id, job_id=job_id)


@app.get("/jobs/{job_id}")
async def read_job(job_id: Annotated[int, Path(ge=1, le=2**63 - 1)], queue: QueueDep) -> JobView:
    # A real app would check that the job belongs to the caller before showing its result.
    try:
        job = await queue.get_job(job_id)
    except JobNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}") from None
    return JobView(
        id=job.id,
        status=job.status,
        attempts=job.attempts,
        result=job.result,
        last_error=job.last_error,
    )
