"""Where the DSN comes from, and how it is shown in logs. Never starts the embedded server."""

from __future__ import annotations

import pytest

from pgqueue.settings import redact_dsn, resolve_dsn

FLAG = "postgresql://flag@db/flag"
PGQUEUE_DSN = "postgresql://pgqueue@db/pgqueue"
DATABASE_URL = "postgresql://app@db/app"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGQUEUE_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_flag_wins_over_both_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGQUEUE_DSN", PGQUEUE_DSN)
    monkeypatch.setenv("DATABASE_URL", DATABASE_URL)

    resolved = resolve_dsn(FLAG)

    assert (resolved.dsn, resolved.source) == (FLAG, "--dsn")


def test_pgqueue_dsn_wins_over_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGQUEUE_DSN", PGQUEUE_DSN)
    monkeypatch.setenv("DATABASE_URL", DATABASE_URL)

    resolved = resolve_dsn()

    assert (resolved.dsn, resolved.source) == (PGQUEUE_DSN, "PGQUEUE_DSN")


def test_database_url_is_used_when_nothing_else_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", DATABASE_URL)

    resolved = resolve_dsn()

    assert (resolved.dsn, resolved.source) == (DATABASE_URL, "DATABASE_URL")


def test_empty_values_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGQUEUE_DSN", "")
    monkeypatch.setenv("DATABASE_URL", DATABASE_URL)

    resolved = resolve_dsn("")

    assert (resolved.dsn, resolved.source) == (DATABASE_URL, "DATABASE_URL")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql+asyncpg://u:p@db:5432/app", "postgresql://u:p@db:5432/app"),
        ("postgresql+psycopg://u@db/app", "postgresql://u@db/app"),
        ("postgres+asyncpg://u@db/app", "postgres://u@db/app"),
        (
            "postgresql://u@db/app?application_name=x+y",
            "postgresql://u@db/app?application_name=x+y",
        ),
    ],
)
def test_sqlalchemy_driver_suffix_is_dropped(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)

    assert resolve_dsn().dsn == expected
    assert resolve_dsn(given).dsn == expected


@pytest.mark.parametrize(
    ("dsn", "redacted"),
    [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("postgresql://:s3cret@db/app", "postgresql://:***@db/app"),
        ("host=db user=app password=s3cret dbname=app", "host=db user=app password=*** dbname=app"),
        (
            "postgresql://app@db/app?password=s3cret&sslmode=off",
            "postgresql://app@db/app?password=***&sslmode=off",
        ),
    ],
)
def test_redact_dsn_hides_the_password(dsn: str, redacted: str) -> None:
    assert redact_dsn(dsn) == redacted
    assert "s3cret" not in redact_dsn(dsn)


def test_redact_dsn_leaves_a_dsn_without_password_unchanged() -> None:
    assert redact_dsn("postgresql://app@db:5432/app") == "postgresql://app@db:5432/app"
