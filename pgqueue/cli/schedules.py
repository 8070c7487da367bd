"""``pgqueue schedules``: list, pause, resume and delete recurring jobs."""

from __future__ import annotations

import click

from pgqueue.cli.options import dsn_option, with_queue
from pgqueue.cli.output import emit_json, emit_table, json_option

name_argument = click.argument("name")


@click.group(invoke_without_command=True)
@dsn_option
@json_option
@click.pass_context
def schedules(ctx: click.Context, dsn: str | None, as_json: bool) -> None:
    """Every schedule (declared with @schedule or added with add_schedule) and its next tick.

    Subcommands pause, resume or delete one.
    """
    if ctx.invoked_subcommand is not None:
        return
    found = with_queue(dsn, lambda queue: queue.schedules())
    if as_json:
        emit_json(found)
        return
    rows = [
        {
            "name": s.name,
            "cron": s.cron,
            "timezone": s.timezone,
            "job_type": s.job_type,
            "state": "paused" if s.paused else "active",
            "next_tick": s.next_tick,
            "last_tick": s.last_tick,
            "from": "code" if s.in_code else "database",
        }
        for s in found
    ]
    columns = ["name", "cron", "timezone", "job_type", "state", "next_tick", "last_tick", "from"]
    emit_table(rows, columns, title="schedules")


@schedules.command()
@name_argument
@dsn_option
def pause(name: str, dsn: str | None) -> None:
    """Enqueue nothing for schedule NAME until it is resumed."""
    with_queue(dsn, lambda queue: queue.pause_schedule(name))
    click.echo(f"schedule {name} paused")


@schedules.command()
@name_argument
@dsn_option
def resume(name: str, dsn: str | None) -> None:
    """Go on from the next tick (ticks due while paused are skipped)."""
    with_queue(dsn, lambda queue: queue.resume_schedule(name))
    click.echo(f"schedule {name} resumed")


@schedules.command()
@name_argument
@dsn_option
def delete(name: str, dsn: str | None) -> None:
    """Delete schedule NAME (its jobs stay). One declared in code comes back when a worker that
    declares it starts."""
    with_queue(dsn, lambda queue: queue.delete_schedule(name))
    click.echo(f"schedule {name} deleted")
