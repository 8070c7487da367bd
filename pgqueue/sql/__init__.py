"""Named SQL queries, loaded once from the ``*.sql`` files beside this module, and the
Statement: one of them with its arguments and how its rows decode.

Each query starts with ``-- name: <name>`` followed by comment lines that describe it; the
``-- params:`` line lists its parameters in order. The store runs them by name, so grepping a
name finds both the SQL and the Python that uses it. ``schema.sql`` is the exception: the whole
current schema as DDL, for reading, which the loader skips.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")

#: The NOTIFY channel on which enqueueing wakes idle workers (also hard-coded in the SQL functions).
JOBS_CHANNEL = "pgqueue_jobs"
#: The NOTIFY channel on which cancel_job tells a worker to stop a running job (payload: its id).
CANCEL_CHANNEL = "pgqueue_cancel"
#: The schema revision these queries need: the alembic head of migrations/.
SCHEMA_REVISION = "0010"
#: The current schema as one DDL file beside the queries, kept by hand for readers (a test
#: checks it against the migrations).
SCHEMA_FILE = "schema.sql"

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    params: tuple[str, ...]


class Row(Protocol):
    """One result row as every executor hands it over: columns by name, in order."""

    def __getitem__(self, column: str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...

    def values(self) -> Iterable[Any]: ...


@dataclass(frozen=True, slots=True)
class Statement(Generic[T]):
    """A named query, its arguments in ``$n`` order, and how its rows become the result.

    Data only: the store describes each statement, and an executor (one per kind of
    connection, async or sync) runs it, so the queries never depend on the driver.
    """

    query: Query
    args: Sequence[object]
    decode: Callable[[Sequence[Row]], T]


def _parse(text: str) -> dict[str, Query]:
    parts = _NAME.split(text)[1:]
    parsed: dict[str, Query] = {}
    for name, body in zip(parts[::2], parts[1::2], strict=True):
        params_line = re.search(r"^-- params:(.*)$", body, re.MULTILINE)
        params = params_line.group(1).split(",") if params_line else []
        sql = "\n".join(line for line in body.strip().splitlines() if not line.startswith("--"))
        parsed[name] = Query(name, sql.strip(), tuple(p.strip() for p in params if p.strip()))
    return parsed


def _load() -> dict[str, Query]:
    loaded: dict[str, Query] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        # The schema file is DDL to read, not named queries: nothing in it is for the store to
        # run, and pgqueue is installed by the migrations, never from it.
        if entry.name.endswith(".sql") and entry.name != SCHEMA_FILE:
            loaded.update(_parse(entry.read_text(encoding="utf-8")))
    return loaded


queries: dict[str, Query] = _load()
