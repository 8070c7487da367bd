"""Settings for commands from the environment and pyproject.toml, and ``pgqueue config``.

A setting is an option of an operational command (``work``, ``prune``): flags win, then
``PGQUEUE_<NAME>`` environment variables, then ``[tool.pgqueue]`` in pyproject.toml, then the
option's default. Filters (``--queue`` of ``dlq``, ...) and ``--dsn`` are not settings.
"""

from __future__ import annotations

import os
from typing import Any

import click

from pgqueue.cli.output import emit_json, emit_table, json_option
from pgqueue.dsn import redact_dsn
from pgqueue.settings import configured_dsn, environment_variable, project_settings

SETTING_COMMANDS = ("work", "prune")
_NOT_SETTINGS = {"dsn", "help", "as_json"}


def settings_of(group: click.Group) -> list[tuple[str, str, click.Option]]:
    """(command, setting name, option) for every setting, in declaration order. A setting is
    named after its flag: ``--poll-interval`` is ``poll_interval`` (``PGQUEUE_POLL_INTERVAL``)."""
    found = []
    for command_name in SETTING_COMMANDS:
        command = group.commands.get(command_name)
        for param in command.params if command is not None else []:
            if isinstance(param, click.Option) and param.name not in _NOT_SETTINGS:
                flag = max(param.opts, key=len).lstrip("-").replace("-", "_")
                found.append((command_name, flag, param))
    return found


def default_map(group: click.Group) -> dict[str, dict[str, Any]]:
    """click's default_map: what the environment and pyproject.toml set, per command."""
    project, _ = project_settings()
    unknown = sorted(set(project) - {name for _, name, _ in settings_of(group)} - {"dsn"})
    if unknown:
        raise click.UsageError(f"unknown setting(s) in [tool.pgqueue]: {', '.join(unknown)}")
    if "dsn" in project:
        raise click.UsageError(
            "[tool.pgqueue] must not hold the dsn (it carries a password): set PGQUEUE_DSN"
        )
    defaults: dict[str, dict[str, Any]] = {}
    for command, name, option in settings_of(group):
        value, source = _lookup(name, project)
        if source != "default":
            defaults.setdefault(command, {})[str(option.name)] = value
    return defaults


def _lookup(name: str, project: dict[str, Any]) -> tuple[Any, str]:
    variable = environment_variable(name)
    if variable in os.environ:
        return os.environ[variable], variable
    if name in project:
        value = project[name]
        return (",".join(map(str, value)) if isinstance(value, list) else value), "pyproject.toml"
    return None, "default"


@click.command()
@json_option
@click.pass_context
def config(ctx: click.Context, as_json: bool) -> None:
    """The effective settings of `pgqueue work` and `pgqueue prune`, and where each came from."""
    group = ctx.parent.command if ctx.parent is not None else None
    assert isinstance(group, click.Group)
    project, path = project_settings()
    dsn = configured_dsn()
    rows = [
        {
            "setting": "dsn",
            "value": redact_dsn(dsn.dsn) if dsn else "embedded PostgreSQL",
            "source": dsn.source if dsn else "default (no DSN configured)",
        }
    ]
    seen = set()
    for _, name, option in settings_of(group):
        if name in seen:
            continue
        seen.add(name)
        value, source = _lookup(name, project)
        if source == "default":  # click marks "no default" with a sentinel object
            value = option.default if isinstance(option.default, str | int | float) else None
        elif source == "pyproject.toml":
            source = str(path)
        rows.append({"setting": name, "value": value, "source": source})
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, ["setting", "value", "source"], title="settings")
