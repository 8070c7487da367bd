"""Where the DSN comes from, and how it is shown in logs. Never starts the embedded server."""

from __future__ import annotations

import re

import pytest

from pgqueue import Queue
from pgqueue.dsn import check_dsn, redact_dsn
from pgqueue.errors import ConfigurationError, InvalidDsn
from pgqueue.settings import resolve_dsn

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


_ASYNCPG_ARGUMENTS = [
    *("host", "port", "user", "password", "passfile", "database", "ssl", "service"),
    *("servicefile", "direct_tls", "server_settings", "target_session_attrs"),
    *("krbsrvname", "gsslib"),
]


def _asyncpg_parses(dsn: str) -> bool:
    """Whether asyncpg's own DSN parser (private, so pinned by this test) takes ``dsn``."""
    from asyncpg import connect_utils

    try:
        connect_utils._parse_connect_dsn_and_args(
            dsn=dsn,
            **dict.fromkeys(_ASYNCPG_ARGUMENTS),
        )
    except Exception:
        return False
    return True


VALID_DSNS = [
    "postgresql://app:s3cret@db:5432/app",
    "postgres://app@db/app",
    "postgresql://app@h1:5432,h2:5433/app",  # multi-host
    "postgresql://app@[::1]:5432/app",
    "postgresql:///app?host=/var/run/postgresql",  # Unix socket directory
    "postgresql:///app?host=h1,h2&port=5432,5433",
    "postgresql://app@db/app?application_name=me@box&options=-c%20x%3Dy",
    "postgresql://app:p%40ss@db:%35432/app",  # encoded @ in the password, encoded port
    *[f"postgresql://app@db/app?sslmode={mode}" for mode in ("disable", "allow", "prefer")],
    "postgresql://app@db/app?sslmode=require&target_session_attrs=read-write",
    "postgresql://",
]


@pytest.mark.parametrize("dsn", VALID_DSNS)
def test_check_dsn_accepts_what_asyncpg_accepts(dsn: str) -> None:
    assert check_dsn(dsn) == dsn
    assert _asyncpg_parses(dsn)


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full", "verify_full"])
def test_check_dsn_accepts_the_verifying_ssl_modes(mode: str) -> None:
    # asyncpg's parser loads the root certificate for these, so it is not asked here.
    assert check_dsn(f"postgresql://app@db/app?sslmode={mode}")


INVALID_DSNS = [
    ("postgresql://u:s3cret@host:notaport/x", "the port 'notaport' of 'host:notaport' is not a"),
    ("postgresql://u:s3cret@h/x?sslmode=bogus", "sslmode='bogus' must be one of disable, allow"),
    ("host=localhost dbname=x", "keyword/value string, and pgqueue takes a URL: "),
    ("postgresql://u:s3cret@h:70000/x", "the port '70000' of 'h:70000' is not a number from 1"),
    ("postgresql://u:s3cret@h1:5432,h2:x/x", "the port 'x' of 'h2:x'"),
    ("postgresql://u:s3cret@h1,,h2/x", "the host list 'h1,,h2' has an empty entry"),
    ("postgresql://u:s3cret@[::1/x", "Invalid IPv6 URL"),
    ("mysql://u:s3cret@h/x", "the scheme must be postgresql:// or postgres://, not mysql://"),
    ("localhost:5432", "the scheme must be postgresql:// or postgres://, not localhost://"),
    ("db.example.com", "it is not a URL: write it as postgresql://USER:PASSWORD@HOST"),
    ("postgresql://u:s3cret@h/x?sslmode", "the query string must be key=value pairs"),
    ("postgresql://u:s3cret@h/x?target_session_attrs=any-old", "target_session_attrs='any-old'"),
    ("postgresql:///x?host=h1,h2&port=1,2,3", "host='h1,h2' names 2 hosts but port= gives 3"),
    ("postgresql://u:s3cret@h/x?port=abc", "port='abc': 'abc' is not a number"),
    ("postgresql://u:s3c@ret@h/x", "holds an unencoded '@': percent-encode"),
    ("postgresql://u:s3c/ret@h/x", "an '@' comes after the host: percent-encode"),
]


@pytest.mark.parametrize(("dsn", "problem"), INVALID_DSNS)
def test_check_dsn_names_the_problem_and_hides_the_password(dsn: str, problem: str) -> None:
    with pytest.raises(InvalidDsn) as raised:
        check_dsn(dsn, "PGQUEUE_DSN")

    message = str(raised.value)
    assert message.startswith(f"PGQUEUE_DSN {redact_dsn(dsn)!r} is not a usable PostgreSQL URL")
    assert problem in message
    assert "s3c" not in message
    assert isinstance(raised.value, ConfigurationError)


def test_a_keyword_value_string_is_answered_with_the_url_to_use() -> None:
    given = "host=/tmp port=5433 user=app password='s3 cret' dbname=jobs sslmode=require"

    with pytest.raises(InvalidDsn) as raised:
        check_dsn(given)

    url = "postgresql://app:***@/jobs?host=/tmp&port=5433&sslmode=require"
    assert str(raised.value).endswith(f"pgqueue takes a URL: {url}")
    assert str(raised.value).startswith("the DSN 'host=/tmp port=5433 user=app password=*** ")
    assert "cret" not in str(raised.value)
    assert _asyncpg_parses(url.replace("***", "pw"))


@pytest.mark.parametrize("variable", ["PGQUEUE_DSN", "DATABASE_URL"])
def test_resolve_dsn_checks_the_dsn_it_found_and_names_where(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "postgresql+asyncpg://u:s3cret@db:5432x/app")

    with pytest.raises(
        InvalidDsn, match=re.escape(f"{variable} 'postgresql://u:***@db:5432x/app'")
    ):
        resolve_dsn()


@pytest.mark.parametrize(
    ("dsn", "redacted"),
    [
        ("postgresql://u:pa/ss@h/x", "postgresql://u:***@h/x"),
        ("postgresql://u:p@s?s@h/x", "postgresql://u:***@h/x"),
        ("host=h password='a b c' user=u", "host=h password=*** user=u"),
        ("postgresql://u@h/x?sslpassword=s3cret", "postgresql://u@h/x?sslpassword=***"),
        ("postgresql://u@h:5432/x?application_name=me@box", None),
    ],
)
def test_redact_dsn_hides_passwords_of_malformed_dsns_too(dsn: str, redacted: str | None) -> None:
    assert redact_dsn(dsn) == (redacted or dsn)


async def test_queue_connect_refuses_a_malformed_dsn_before_connecting() -> None:
    with pytest.raises(InvalidDsn, match=re.escape("the DSN 'postgresql://u:***@h/x?sslmode=on'")):
        await Queue.connect("postgresql://u:s3cret@h/x?sslmode=on")
    with pytest.raises(InvalidDsn, match=re.escape("listen_dsn 'postgresql://u:***@h:x/x' is")):
        await Queue.connect("postgresql://u@127.0.0.1:1/x", listen_dsn="postgresql://u:s3@h:x/x")
