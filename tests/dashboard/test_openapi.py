"""The JSON API against its own description: schemathesis reads ``/api/openapi.json`` from a
live ``pgqueue dashboard`` process, generates requests from it (Hypothesis, derandomized), and
checks every response: never a 5xx, and status code, content type and body as documented."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance, status_code_conformance

from pgqueue import Queue
from pgqueue.dashboard.openapi import document
from tests.dashboard.conftest import DashboardProcess
from tests.jobs import Echo
from tests.store.transitions import complete, fail, start

ECHO = Echo.job_options.name

EXAMPLES = hypothesis.settings(
    max_examples=25,
    deadline=None,  # a request to another process: its time is not the test's to bound
    derandomize=True,  # the same cases on every run
    database=None,  # nothing saved between runs (derandomized, there is nothing to replay)
    # Building cases from a schema is slow on a loaded machine; that time is not the API's.
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)

# Each operation with valid requests, and with invalid ones where it takes any input.
RUNS = [
    pytest.param(method.upper(), path, mode, id=f"{method.upper()} {path} {mode.value}")
    for path, methods in document("")["paths"].items()
    for method, operation in methods.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or "parameters" in operation or "requestBody" in operation
]


async def seed(queue: Queue, db: asyncpg.Connection) -> list[int]:
    """A job of each status, so that generated ids also hit real rows."""
    pending = await queue.enqueue(Echo(text="pending"))
    failed = await queue.enqueue(Echo(text="failed"), queue="failing")
    assert await fail(db, failed, await start(db, failed)) == "failed"
    completed = await queue.enqueue(Echo(text="completed"), queue="finishing")
    assert await complete(db, completed, await start(db, completed)) == [completed]
    cancelled = await queue.enqueue(Echo(text="cancelled"))
    assert await queue.cancel(cancelled)
    return [pending, failed, completed, cancelled]


def cases(operation: Any, job_ids: list[int], mode: GenerationMode) -> st.SearchStrategy[Any]:
    """The operation's generated cases; those with a job id also on the seeded jobs, and the
    enqueue also with a registered job type and a valid payload (else every one is a 422)."""
    generated = operation.as_strategy(generation_mode=mode)
    if "{job_id}" in operation.path:
        seeded = [
            operation.as_strategy(generation_mode=mode, path_parameters={"job_id": i})
            for i in job_ids
        ]
        return st.one_of(generated, *seeded)
    if is_enqueue(operation) and mode is GenerationMode.POSITIVE:
        return st.one_of(generated, generated.map(registered_echo))
    return generated


def is_enqueue(operation: Any) -> bool:
    return bool(operation.method.upper() == "POST" and operation.path == "/api/jobs")


def registered_echo(case: Any) -> Any:
    case.body = {**case.body, "job_type": ECHO, "payload": {"text": "generated"}}
    return case


def check(operation: Any, job_ids: list[int], base_url: str, mode: GenerationMode) -> None:
    """Run the generated cases and validate every response (blocking: run in a thread)."""
    with requests.Session() as session:

        @EXAMPLES
        @hypothesis.given(case=cases(operation, job_ids, mode))
        def call(case: Any) -> None:
            if mode is GenerationMode.NEGATIVE:
                # An invalid request must get neither a 5xx nor a status the document does not
                # name. Not necessarily a 4xx: blank filters are unset (the jobs page's form
                # sends them), an action's body is ignored, and a path that no route matches
                # (a negative id) is Starlette's plain-text 404.
                checks = [not_a_server_error, status_code_conformance]
                case.call_and_validate(base_url=base_url, session=session, checks=checks)
                return
            # The document cannot list the job types an app registers, nor their payloads: an
            # unknown one is a (documented) 422 although the schema allows any string. Cases
            # with the registered type must still be accepted.
            unregistered = is_enqueue(operation) and case.body.get("job_type") != ECHO
            excluded = [positive_data_acceptance] if unregistered else None
            case.call_and_validate(base_url=base_url, session=session, excluded_checks=excluded)

        call()


@pytest.mark.parametrize(("method", "path", "mode"), RUNS)
async def test_the_operation_answers_as_its_document_says(
    dashboard: DashboardProcess,
    queue: Queue,
    db: asyncpg.Connection,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    job_ids = await seed(queue, db)
    schema = await asyncio.to_thread(
        schemathesis.openapi.from_url, f"{dashboard.url}/api/openapi.json"
    )
    operation = schema[path][method]

    await asyncio.to_thread(check, operation, job_ids, dashboard.url, mode)
