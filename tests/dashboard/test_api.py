"""The JSON API of a real ``pgqueue dashboard`` process, over HTTP: enqueue by job type, a job's
status and result, retry and cancel, lists with keyset pages, stats, and the OpenAPI document.
Every outcome is read back from the database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis

from pgqueue import Queue
from pgqueue.dashboard import api
from tests.dashboard.conftest import DashboardProcess
from tests.factories import count, eventually, running, status_of
from tests.jobs import Echo
from tests.store.transitions import complete, fail, start

ECHO = Echo.job_options.name  # "tests.jobs.Echo": registered under its qualified name
BEYOND_BIGINT = 2**63  # one past pgqueue.jobs.id's largest value
JSON = {"Content-Type": "application/json"}  # what a state-changing request must be


@pytest.fixture
async def client(dashboard: DashboardProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dashboard.url, timeout=10) as http:
        yield http


async def row_of(db: asyncpg.Connection, job_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT job_type, queue, payload::text AS payload, status::text AS status, priority,"
        " attempts, unique_key, run_at - created_at AS delay, run_at > now() AS in_the_future"
        " FROM pgqueue.jobs WHERE id = $1",
        job_id,
    )
    assert row is not None, f"no row for job {job_id}"
    return {**row, "payload": json.loads(row["payload"])}


# --- POST /api/jobs ---------------------------------------------------------------------------


async def test_enqueue_by_job_type_answers_201_with_the_id_of_the_row_it_wrote(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/jobs", json={"job_type": ECHO, "payload": {"text": "hi", "numbers": [1, 2]}}
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {"id": body["id"], "existing": False}
    row = await row_of(db, body["id"])
    assert (row["job_type"], row["queue"], row["status"], row["priority"]) == (
        ECHO,
        "tests",  # Echo's own queue
        "pending",
        0,
    )
    assert row["payload"] == {"text": "hi", "numbers": [1, 2]}
    assert row["delay"] == timedelta(0)
    assert await count(db) == 1


async def test_enqueue_with_queue_priority_and_delay_stores_them(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/jobs",
        json={
            "job_type": ECHO,
            "payload": {"text": "later"},
            "queue": "reports",
            "priority": -7,
            "delay": 90.5,
        },
    )

    assert response.status_code == 201, response.text
    row = await row_of(db, response.json()["id"])
    assert (row["queue"], row["priority"], row["payload"]) == (
        "reports",
        -7,
        {"text": "later", "numbers": []},
    )
    # run_at is the enqueueing statement's now() plus the delay, on the database clock.
    assert row["delay"] == timedelta(seconds=90.5)
    assert row["in_the_future"] is True


async def test_enqueue_with_a_held_unique_key_answers_200_with_the_existing_job(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    request = {"job_type": ECHO, "payload": {"text": "first"}, "unique_key": "report-42"}
    first = await client.post("/api/jobs", json=request)

    second = await client.post(
        "/api/jobs", json={**request, "payload": {"text": "second"}, "priority": 5}
    )

    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json() == {"id": first.json()["id"], "existing": True}
    assert await count(db) == 1
    row = await row_of(db, first.json()["id"])
    assert (row["payload"]["text"], row["priority"], row["unique_key"]) == ("first", 0, "report-42")


INVALID_REQUESTS = {
    "payload misses a field": (
        {"job_type": ECHO, "payload": {"numbers": [1]}},
        ["body", "payload", "text"],
    ),
    "payload field of the wrong type": (
        {"job_type": ECHO, "payload": {"text": "x", "numbers": "many"}},
        ["body", "payload", "numbers"],
    ),
    "payload not an object": ({"job_type": ECHO, "payload": ["x"]}, ["body", "payload"]),
    "extra top-level field": (
        {"job_type": ECHO, "payload": {"text": "x"}, "when": "now"},
        ["body", "when"],
    ),
    "no job type": ({"payload": {"text": "x"}}, ["body", "job_type"]),
    "negative delay": (
        {"job_type": ECHO, "payload": {"text": "x"}, "delay": -1},
        ["body", "delay"],
    ),
    "priority -32768, which Queue.enqueue refuses": (
        {"job_type": ECHO, "payload": {"text": "x"}, "priority": -32768},
        ["body", "priority"],
    ),
    "priority beyond smallint": (
        {"job_type": ECHO, "payload": {"text": "x"}, "priority": 40000},
        ["body", "priority"],
    ),
    "unknown job type": (
        {"job_type": "tests.jobs.Nowhere", "payload": {}},
        ["body", "job_type"],
    ),
    # Refused, the field located, before any SQL runs: a delay that run_at cannot hold, a NUL,
    # and a key too long for its unique index each were a 500.
    "delay beyond a century": (
        {"job_type": ECHO, "payload": {"text": "x"}, "delay": 1.5e308},
        ["body", "delay"],
    ),
    "unique_key with NUL": (
        {"job_type": ECHO, "payload": {"text": "x"}, "unique_key": "a\x00b"},
        ["body", "unique_key"],
    ),
    "unique_key too long for its index": (
        {"job_type": ECHO, "payload": {"text": "x"}, "unique_key": "k" * 501},
        ["body", "unique_key"],
    ),
    "empty unique_key": (
        {"job_type": ECHO, "payload": {"text": "x"}, "unique_key": ""},
        ["body", "unique_key"],
    ),
}


async def test_an_invalid_enqueue_answers_422_locating_the_field_and_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for case, (request_body, location) in INVALID_REQUESTS.items():
        response = await client.post("/api/jobs", json=request_body)

        assert response.status_code == 422, (case, response.text)
        assert response.headers["content-type"] == "application/json", case
        located = [error["loc"] for error in response.json()["errors"]]
        assert location in located, (case, response.text)
    assert await count(db) == 0


async def test_an_unknown_job_type_is_named_with_the_known_ones(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/api/jobs", json={"job_type": "tests.jobs.Nowhere"})

    assert response.status_code == 422
    body = response.json()
    assert "'tests.jobs.Nowhere'" in body["detail"]
    [error] = body["errors"]
    assert ECHO in error["msg"]
    assert await count(db) == 0


async def test_an_invalid_payload_is_not_echoed_back(client: httpx.AsyncClient) -> None:
    # A payload may hold secrets: the errors locate the field without repeating its value.
    response = await client.post(
        "/api/jobs", json={"job_type": ECHO, "payload": {"text": ["s3cret-value"]}}
    )

    assert response.status_code == 422
    assert "s3cret-value" not in response.text


async def test_a_bad_queue_name_answers_422_naming_it_and_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/jobs", json={"job_type": ECHO, "payload": {"text": "x"}, "queue": "a b"}
    )

    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", "queue"]
    assert "'a b'" in error["msg"]
    assert await count(db) == 0


async def test_a_unique_key_of_500_four_byte_characters_fits_its_index(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    key = "\U0001f600" * 500  # 2,000 bytes of UTF-8

    response = await client.post(
        "/api/jobs", json={"job_type": ECHO, "payload": {"text": "x"}, "unique_key": key}
    )

    assert response.status_code == 201, response.text
    assert (await row_of(db, response.json()["id"]))["unique_key"] == key


# Well-formed, but nested deeper than Python's JSON decoder goes.
NESTED_TOO_DEEP = b'{"job_type": "tests.jobs.Echo", "payload": {"text": %s}}' % (
    b"[" * 5000 + b"]" * 5000
)


async def test_a_body_that_is_not_json_answers_400_and_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    bodies = {
        "malformed": b"{not json",
        "not utf-8": b"\xff\xfe",
        "empty": b"",
        "nested too deep": NESTED_TOO_DEEP,  # was a 500 (RecursionError)
    }
    for case, body in bodies.items():
        response = await client.post("/api/jobs", content=body, headers=JSON)

        assert response.status_code == 400, (case, response.text)
        assert response.json()["detail"].startswith("the body is not JSON"), case
    assert await count(db) == 0


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_a_non_finite_number_answers_422_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection, number: str
) -> None:
    # Python's JSON parser takes NaN and Infinity (and 1e999 as infinity): they must not reach
    # enqueue, which would refuse them only as a 500.
    for field, body in {
        "delay": f'{{"job_type": "{ECHO}", "payload": {{"text": "x"}}, "delay": {number}}}',
        "priority": f'{{"job_type": "{ECHO}", "payload": {{"text": "x"}}, "priority": {number}}}',
        "payload": f'{{"job_type": "{ECHO}", "payload": {{"text": "x", "numbers": [{number}]}}}}',
    }.items():
        response = await client.post("/api/jobs", content=body.encode(), headers=JSON)

        assert response.status_code == 422, (field, response.text)
        [error] = response.json()["errors"]
        assert error["loc"][:2] == ["body", field], response.text
        assert "finite number" in error["msg"] or "valid integer" in error["msg"], response.text
    assert await count(db) == 0


async def test_a_json_body_that_is_not_an_object_answers_422(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/api/jobs", json=[ECHO])

    assert response.status_code == 422, response.text
    assert await count(db) == 0


# --- GET /api/jobs/{id} -------------------------------------------------------------------------


async def test_get_job_shows_the_status_and_the_result_once_a_worker_ran_it(
    client: httpx.AsyncClient, queue: Queue, db: asyncpg.Connection
) -> None:
    enqueued = await client.post(
        "/api/jobs", json={"job_type": ECHO, "payload": {"text": "ran", "numbers": [3]}}
    )
    job_id = enqueued.json()["id"]
    before = (await client.get(f"/api/jobs/{job_id}")).json()
    assert (before["id"], before["status"], before["result"]) == (job_id, "pending", None)

    async def job() -> dict[str, Any]:
        response = await client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async with running(queue, queues=["tests"]):
        after = await eventually(job, until=lambda body: body["status"] == "completed")

    assert after["result"] == {"text": "ran", "numbers": [3], "attempt": 1}  # Echo.handle's
    assert (after["payload"], after["attempts"], after["job_type"]) == (
        {"text": "ran", "numbers": [3]},
        1,
        ECHO,
    )
    assert after["finished_at"] is not None
    assert await status_of(db, job_id) == "completed"


async def test_get_job_of_an_id_that_names_no_job_answers_404(client: httpx.AsyncClient) -> None:
    for job_id in (424242, BEYOND_BIGINT):
        response = await client.get(f"/api/jobs/{job_id}")

        assert response.status_code == 404, job_id
        assert response.json()["detail"] == f"no job with id {job_id}"


# --- POST /api/jobs/{id}/retry and /cancel ------------------------------------------------------


async def failed_job(queue: Queue, db: asyncpg.Connection) -> int:
    """A job that failed for good, in a queue of its own (so the claim takes it alone)."""
    job_id = await queue.enqueue(Echo(text="failed"), queue="failing")
    assert await fail(db, job_id, await start(db, job_id)) == "failed"
    return job_id


async def completed_job(queue: Queue, db: asyncpg.Connection) -> int:
    """A job that completed, in a queue of its own."""
    job_id = await queue.enqueue(Echo(text="completed"), queue="finishing")
    assert await complete(db, job_id, await start(db, job_id)) == [job_id]
    return job_id


async def test_retry_of_a_failed_job_puts_it_back_to_pending_with_fresh_attempts(
    client: httpx.AsyncClient, queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await failed_job(queue, db)

    response = await client.post(f"/api/jobs/{job_id}/retry", headers=JSON)

    assert response.status_code == 200, response.text
    assert response.json() == {"id": job_id, "status": "pending"}
    row = await row_of(db, job_id)
    assert (row["status"], row["attempts"]) == ("pending", 0)


@pytest.mark.parametrize("action", ["retry", "cancel"])
async def test_an_action_on_a_completed_job_answers_409_naming_its_status(
    client: httpx.AsyncClient, queue: Queue, db: asyncpg.Connection, action: str
) -> None:
    job_id = await completed_job(queue, db)

    response = await client.post(f"/api/jobs/{job_id}/{action}", headers=JSON)

    assert response.status_code == 409, response.text
    assert response.json()["detail"].startswith(f"job {job_id} is completed")
    assert await status_of(db, job_id) == "completed"


async def test_cancel_of_a_pending_job_cancels_it(
    client: httpx.AsyncClient, queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await queue.enqueue(Echo(text="pending"))

    response = await client.post(f"/api/jobs/{job_id}/cancel", headers=JSON)

    assert response.status_code == 200, response.text
    assert response.json() == {"id": job_id, "status": "cancelled"}
    assert await status_of(db, job_id) == "cancelled"


async def test_an_action_on_an_id_that_names_no_job_answers_404(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for action in ("retry", "cancel"):
        for job_id in (424242, BEYOND_BIGINT):
            response = await client.post(f"/api/jobs/{job_id}/{action}", headers=JSON)

            assert response.status_code == 404, (action, job_id, response.text)
            assert response.json()["detail"] == f"no job with id {job_id}"
    assert await count(db) == 0


async def test_an_action_that_is_not_json_is_refused_with_the_documented_403(
    client: httpx.AsyncClient, queue: Queue, db: asyncpg.Connection
) -> None:
    job_id = await failed_job(queue, db)

    for action in ("retry", "cancel"):
        response = await client.post(f"/api/jobs/{job_id}/{action}")  # no Content-Type

        assert response.status_code == 403, action
        assert response.headers["content-type"].startswith("text/plain")
    assert await status_of(db, job_id) == "failed"


# --- GET /api/jobs ------------------------------------------------------------------------------


async def pages(client: httpx.AsyncClient, **filters: str | int) -> list[list[int]]:
    """The ids of each page, following next_before_id until it is null."""
    seen: list[list[int]] = []
    params: dict[str, str | int] = dict(filters)
    while True:
        response = await client.get("/api/jobs", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.append([job["id"] for job in body["jobs"]])
        if body["next_before_id"] is None:
            return seen
        params["before_id"] = body["next_before_id"]


async def test_job_pages_follow_next_before_id_and_cover_every_job_once_newest_first(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    ids = await queue.enqueue_batch([Echo(text=str(n)) for n in range(8)])

    listed = await pages(client, limit=3)

    assert [len(page) for page in listed] == [3, 3, 2]
    assert [job_id for page in listed for job_id in page] == sorted(ids, reverse=True)


async def test_job_list_filters_by_queue_status_job_type_and_time(
    client: httpx.AsyncClient, queue: Queue, db: asyncpg.Connection
) -> None:
    tests_pending = await queue.enqueue(Echo(text="a"))
    other_pending = await queue.enqueue(Echo(text="b"), queue="other")
    failed = await failed_job(queue, db)
    completed = await completed_job(queue, db)

    async def ids(**filters: str) -> list[int]:
        [page] = await pages(client, **filters)
        return page

    assert await ids() == [completed, failed, other_pending, tests_pending]
    assert await ids(queue="other") == [other_pending]
    assert await ids(status="failed") == [failed]
    assert await ids(status="pending", queue="tests") == [tests_pending]
    assert await ids(job_type=ECHO, status="completed") == [completed]
    assert await ids(job_type="tests.jobs.Nowhere") == []
    assert await ids(queue="", status=" ") == await ids()  # blank filters are unset
    in_an_hour = (await db.fetchval("SELECT now() + interval '1 hour'")).isoformat()
    assert await ids(since=in_an_hour) == []
    assert await ids(until=in_an_hour, queue="other") == [other_pending]
    assert await ids(status="failed", until=in_an_hour) == [failed]  # finished_at before


async def test_a_job_in_the_list_is_a_summary(client: httpx.AsyncClient, queue: Queue) -> None:
    job_id = await queue.enqueue(Echo(text="x"), priority=2)

    [job] = (await client.get("/api/jobs")).json()["jobs"]

    assert (job["id"], job["status"], job["priority"], job["blocked"]) == (
        job_id,
        "pending",
        2,
        False,
    )
    assert "payload" not in job  # no payload, result or errors in a list


INVALID_FILTERS = [
    ("status", "bogus"),
    ("limit", "0"),
    ("limit", "501"),
    ("before_id", "abc"),
    ("before_id", "0"),
    ("before_id", str(BEYOND_BIGINT)),
    ("since", "notadate"),
    ("until", "2024-13-01"),
    ("queue", "a b"),
    ("job_type", "tests.jobs.\x00"),  # was a 500: PostgreSQL's text cannot hold NUL
]


async def test_an_invalid_filter_answers_422_naming_it(client: httpx.AsyncClient) -> None:
    for name, value in INVALID_FILTERS:
        response = await client.get("/api/jobs", params={name: value})

        assert response.status_code == 422, (name, value, response.text)
        body = response.json()
        assert body["detail"] == "invalid filter"
        assert [error["loc"] for error in body["errors"]] == [["query", name]], (name, value)


async def test_bounds_at_the_edges_of_the_calendar_bound_every_job_alike(
    client: httpx.AsyncClient, queue: Queue, db: asyncpg.Connection
) -> None:
    pending = await queue.enqueue(Echo(text="x"))
    failed = await failed_job(queue, db)
    # Year 1 or 9999 in an offset that leaves Python's range in UTC: each was a 500.
    every_bound = [
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "9999-12-31T23:59:59-01:00"},
        {"since": "0001-01-01T00:00:00+05:00", "status": "failed"},
        {"since": "0001-01-01T00:00:00", "until": "9999-12-31T23:59:59.999999"},
    ]

    for bounds in every_bound:
        [page] = await pages(client, **bounds)

        assert page == ([failed] if "status" in bounds else [failed, pending]), bounds


# --- GET /api/stats -----------------------------------------------------------------------------


async def test_stats_count_what_the_database_holds_per_queue(
    client: httpx.AsyncClient, queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue_batch([Echo(text="due"), Echo(text="due")])
    await queue.enqueue(Echo(text="later"), delay=timedelta(hours=1))
    parent = await queue.enqueue(Echo(text="parent"), queue="other")
    await queue.enqueue(Echo(text="child"), queue="other", depends_on=[parent])
    await failed_job(queue, db)
    await completed_job(queue, db)
    running_id = await queue.enqueue(Echo(text="running"), queue="busy")
    await start(db, running_id)

    response = await client.get("/api/stats")

    assert response.status_code == 200, response.text
    by_queue = {summary["queue"]: summary for summary in response.json()["queues"]}
    rows = await db.fetch(
        "SELECT queue,"
        " count(*) FILTER (WHERE status = 'pending' AND NOT blocked AND run_at <= now()) AS due,"
        " count(*) FILTER (WHERE status = 'pending' AND NOT blocked AND run_at > now()) AS later,"
        " count(*) FILTER (WHERE status = 'pending' AND blocked) AS blocked,"
        " count(*) FILTER (WHERE status = 'running') AS running,"
        " count(*) FILTER (WHERE status = 'failed') AS failed"
        " FROM pgqueue.jobs GROUP BY queue"
    )
    counts = {
        r["queue"]: (r["due"], r["later"], r["blocked"], r["running"], r["failed"]) for r in rows
    }
    assert {
        name: (s["pending"], s["scheduled"], s["blocked"], s["running"], s["failed"])
        for name, s in by_queue.items()
    } == {name: numbers for name, numbers in counts.items() if any(numbers)}
    assert counts["finishing"] == (0, 0, 0, 0, 0)  # only completed jobs: a queue at rest
    assert (by_queue["tests"]["pending"], by_queue["tests"]["scheduled"]) == (2, 1)
    assert (by_queue["other"]["pending"], by_queue["other"]["blocked"]) == (1, 1)
    assert (by_queue["busy"]["running"], by_queue["failing"]["failed"]) == (1, 1)
    assert by_queue["tests"]["oldest_pending_seconds"] >= 0


# --- GET /api/openapi.json ----------------------------------------------------------------------


def starlette_routes() -> set[tuple[str, str]]:
    """(method, path) of every /api route but the document's own, in OpenAPI's path syntax."""
    return {
        (method, route.path.replace(":int", ""))
        for route in api.routes
        for method in route.methods or ()
        if method != "HEAD" and route.path != "/api/openapi.json"
    }


async def test_the_openapi_document_is_valid_openapi_3_1_listing_every_api_route(
    dashboard: DashboardProcess,
) -> None:
    # schemathesis loads with requests (blocking): off the event loop.
    schema = await asyncio.to_thread(
        schemathesis.openapi.from_url, f"{dashboard.url}/api/openapi.json"
    )

    schema.validate()  # against the OpenAPI 3.1 meta-schema; raises if the document breaks it
    assert schema.raw_schema["openapi"] == "3.1.0"
    documented = {
        (operation.method.upper(), operation.path)
        for result in schema.get_all_operations()
        for operation in [result.ok()]
    }
    assert documented == starlette_routes()
    assert schema.raw_schema["servers"] == [{"url": "/"}]
    posts = [ops["post"] for ops in schema.raw_schema["paths"].values() if "post" in ops]
    assert len(posts) == 3
    for post in posts:  # the guard's refusal, and the JSON body that avoids it
        assert "403" in post["responses"]
        assert "application/json" in post["requestBody"]["content"]
