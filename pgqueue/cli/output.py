"""How commands print data: a table on a terminal, tab-separated rows when piped, or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from pydantic import BaseModel

# Columns kept on one line; long free text (errors, lists) wraps instead.
_SHORT = {
    "queue",
    "pending",
    "sched",
    "running",
    "done",
    "failed",
    "cancel",
    "oldest",
    "1min",
    "blocked",
    "id",
    "attempts",
    "pid",
    "concurrency",
}

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def as_plain(value: Any) -> Any:
    """A record (or list of them) as JSON-ready values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [as_plain(item) for item in value]
    return value


def emit_json(value: Any) -> None:
    click.echo(json.dumps(as_plain(value), indent=2))


def emit_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str) -> None:
    """Rows as a table on a terminal (rich), or as tab-separated lines with a header row."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    if not sys.stdout.isatty():
        for line in [list(columns), *cells]:
            click.echo("\t".join(line))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column.replace("_", " "), no_wrap=column in _SHORT)
    for line in cells:
        table.add_row(*line)
    Console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
