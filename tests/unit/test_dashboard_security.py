"""The dashboard's pure pieces: parsing and checking credentials, which hosts are loopback, and
the filters its pages format times with. No database, no server."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pgqueue.dashboard.app import _span, _when
from pgqueue.dashboard.security import Credentials, is_loopback


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# --- Credentials.parse ----------------------------------------------------------------------


def test_nothing_given_means_no_credentials() -> None:
    assert Credentials.parse(None, None) is None


def test_user_and_password_split_at_the_first_colon() -> None:
    assert Credentials.parse("admin:s3:cret", None) == Credentials("admin", "s3:cret", None)


def test_a_token_alone_or_with_a_password() -> None:
    assert Credentials.parse(None, "tok123") == Credentials(token="tok123")
    assert Credentials.parse("admin:s3cret", "tok123") == Credentials("admin", "s3cret", "tok123")


@pytest.mark.parametrize("auth", ["nocolon", ":s3cret", "admin:", ":", ""])
def test_auth_needs_a_user_and_a_password(auth: str) -> None:
    with pytest.raises(ValueError, match="USER:PASSWORD, both non-empty") as raised:
        Credentials.parse(auth, None)
    assert "s3cret" not in str(raised.value)  # never echo what might be a password


def test_an_empty_token_is_refused_rather_than_admitting_anyone() -> None:
    with pytest.raises(ValueError, match="token is empty"):
        Credentials.parse(None, "")


# --- Credentials.admit ----------------------------------------------------------------------

PASSWORD = Credentials(username="admin", password="s3cret")
TOKEN = Credentials(token="tok123")
BOTH = Credentials(username="admin", password="s3cret", token="tok123")


@pytest.mark.parametrize(
    ("credentials", "authorization"),
    [
        (PASSWORD, basic("admin", "s3cret")),
        (PASSWORD, basic("admin", "s3cret").replace("Basic", "basic")),  # schemes ignore case
        (TOKEN, "Bearer tok123"),
        (TOKEN, "BEARER  tok123 "),
        (TOKEN, basic("anyone", "tok123")),  # what a browser's login prompt can send
        (TOKEN, basic("", "tok123")),
        (BOTH, basic("admin", "s3cret")),
        (BOTH, "Bearer tok123"),
        (BOTH, basic("someone-else", "tok123")),
    ],
)
def test_admits_the_right_password_or_token(credentials: Credentials, authorization: str) -> None:
    assert credentials.admit(authorization)


@pytest.mark.parametrize(
    ("credentials", "authorization"),
    [
        (PASSWORD, None),
        (PASSWORD, ""),
        (PASSWORD, basic("admin", "wrong")),
        (PASSWORD, basic("root", "s3cret")),
        (PASSWORD, basic("admin", "s3cret ")),
        (PASSWORD, basic("admin", "s3cre")),
        (PASSWORD, "Bearer s3cret"),  # no token configured: a bearer never passes
        (PASSWORD, "Bearer "),
        (PASSWORD, "Digest " + basic("admin", "s3cret").removeprefix("Basic ")),
        (PASSWORD, basic("admin", "s3cret").removeprefix("Basic ")),  # no scheme
        (TOKEN, "Bearer tok1234"),
        (TOKEN, "Bearer tok12"),
        (TOKEN, "Bearer"),
        (TOKEN, basic("tok123", "")),  # the token as the user name is not the password
        (TOKEN, basic("admin", "s3cret")),
        (BOTH, basic("admin", "tok1234")),
    ],
)
def test_refuses_wrong_missing_or_misplaced_secrets(
    credentials: Credentials, authorization: str | None
) -> None:
    assert not credentials.admit(authorization)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!!",  # not base64
        "Basic YWRtaW46dG9rMTIz x",  # admin:tok123, then a stray character
        "Basic YWRtaW46dG9rMTIzNA",  # admin:tok1234 without its padding
        "Basic " + base64.b64encode(b"admin:\xff\xfe").decode(),  # not UTF-8
        "Basic " + base64.b64encode(b"no colon at all").decode(),
        "Basic ",
        "Basic",
        "Basic \xe9",  # a latin-1 header byte, as Starlette decodes one
        "Bearer \xe9",
    ],
)
def test_malformed_basic_is_refused_not_an_error(authorization: str) -> None:
    assert not BOTH.admit(authorization)


# --- is_loopback ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "[::]", "192.168.1.1", "10.0.0.5", "example.com", "my-laptop", ""]
)
def test_hosts_that_reach_beyond_this_machine(host: str) -> None:
    assert not is_loopback(host)


# --- the pages' filters ---------------------------------------------------------------------


def test_when_shows_utc_to_the_second() -> None:
    in_paris = datetime(2024, 3, 1, 13, 4, 5, 987654, tzinfo=timezone(timedelta(hours=1)))

    assert _when(in_paris) == "2024-03-01 12:04:05"
    assert _when(datetime(2024, 3, 1, 12, 4, 5, tzinfo=UTC)) == "2024-03-01 12:04:05"
    assert _when(None) == ""


@pytest.mark.parametrize(
    ("length", "shown"),
    [
        (None, ""),
        (0, "0 ms"),
        (0.85, "850 ms"),
        (timedelta(milliseconds=12), "12 ms"),
        (1, "1.0 s"),
        (12.34, "12.3 s"),
        (60, "1 min 0 s"),
        (timedelta(minutes=4, seconds=5), "4 min 5 s"),
        (timedelta(hours=3, minutes=20, seconds=59), "3 h 20 min"),
        (timedelta(days=2, hours=4, minutes=30), "2 d 4 h"),
        (timedelta(days=400), "400 d 0 h"),
    ],
)
def test_span_reads_as_people_say_durations(length: timedelta | float | None, shown: str) -> None:
    assert _span(length) == shown
