"""Settings: flags, then PGQUEUE_* environment variables, then [tool.pgqueue] in pyproject.toml."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner, Result

from pgqueue import Queue
from pgqueue.cli import main
from tests.jobs import Echo


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory (the working directory) with settings in its pyproject.toml."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pgqueue]\nconcurrency = 25\nqueues = ["emails", "images"]\nkeep-completed = "2h"\n'
    )
    monkeypatch.chdir(tmp_path)
    for name in ("PGQUEUE_DSN", "DATABASE_URL", "PGQUEUE_KEEP_COMPLETED", "PGQUEUE_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def test_config_shows_each_value_and_where_it_came_from(project: Path) -> None:
    result = invoke("config", "--json", env={"PGQUEUE_POLL_INTERVAL": "2"})
    assert result.exit_code == 0, result.output
    settings = {row["setting"]: (row["value"], row["source"]) for row in json.loads(result.stdout)}
    pyproject = str(project / "pyproject.toml")
    assert settings["concurrency"] == (25, pyproject)
    assert settings["queues"] == ("emails,images", pyproject)
    assert settings["poll_interval"] == ("2", "PGQUEUE_POLL_INTERVAL")
    assert settings["max_retries"] == (3, "default")
    assert settings["dsn"] == ("embedded PostgreSQL", "default (no DSN configured)")


def test_unknown_or_secret_settings_in_pyproject_are_refused(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.pgqueue]\nconcurency = 5\n")
    typo = invoke("config")
    assert (typo.exit_code, "unknown setting(s) in [tool.pgqueue]: concurency" in typo.stderr) == (
        2,
        True,
    )
    (project / "pyproject.toml").write_text('[tool.pgqueue]\ndsn = "postgresql://u:pw@h/db"\n')
    secret = invoke("config")
    assert (secret.exit_code, "set PGQUEUE_DSN" in secret.stderr) == (2, True)
    assert "pw" not in secret.output


async def test_flag_beats_environment_beats_pyproject(
    project: Path, queue: Queue, db: asyncpg.Connection, dsn: str
) -> None:
    async def completed_after_pruning(*args: str, env: dict[str, str] | None = None) -> int:
        await db.execute("DELETE FROM pgqueue.jobs")
        ids = await queue.enqueue_batch([Echo(text="x")])
        await db.execute(
            "UPDATE pgqueue.jobs SET status = 'completed', finished_at = now() - interval '3 hours'"
            " WHERE id = ANY($1)",
            ids,
        )
        result = await asyncio.to_thread(invoke, "prune", "--dsn", dsn, *args, env=env)
        assert result.exit_code == 0, result.output
        return int(await db.fetchval("SELECT count(*) FROM pgqueue.jobs"))

    assert await completed_after_pruning() == 0  # pyproject: keep 2h, so the 3h-old job goes
    assert await completed_after_pruning(env={"PGQUEUE_KEEP_COMPLETED": "5h"}) == 1
    assert (
        await completed_after_pruning(
            "--keep-completed", "1h", env={"PGQUEUE_KEEP_COMPLETED": "5h"}
        )
        == 0
    )
