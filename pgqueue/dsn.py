"""DSNs: checked once where they are resolved, so a malformed one is a clear error (not a
traceback from the driver), and redacted wherever one is shown."""

from __future__ import annotations

import re
from itertools import zip_longest
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from pgqueue.errors import InvalidDsn

# A password: in a URL's user info (up to the last @, so that an unencoded @ or / in it hides
# too), or a password= keyword (libpq keyword/value strings, URL query strings, sslpassword).
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^:@]*):.*@", re.DOTALL)
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s&]*)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ***, safe to log (well formed or not)."""
    return _KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", dsn))


# What asyncpg accepts (asyncpg/connect_utils.py); anything else fails only when connecting.
_SCHEMES = ("postgresql", "postgres")
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SSL_NEGOTIATIONS = ("postgres", "direct")
_SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
_IPV6_HOST = re.compile(r"\[[^\]]+\](?::(?P<port>.*))?")
# A libpq keyword/value pair: key = value, the value bare or single-quoted with \ escapes.
_KEYWORD_VALUE = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)\s*")
_URL_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
_ENCODE = "percent-encode / ? # @ in the user and password (as %2F %3F %23 %40)"


def check_dsn(dsn: str, source: str = "--dsn") -> str:
    """``dsn`` if it is a PostgreSQL URL asyncpg can use; else InvalidDsn naming the problem
    and ``source`` (where the DSN came from), with any password hidden."""
    problem = _dsn_problem(dsn)
    if problem is None:
        return dsn
    where = "the DSN" if source == "--dsn" else source
    raise InvalidDsn(f"{where} {redact_dsn(dsn)!r} is not a usable PostgreSQL URL: {problem}")


def _dsn_problem(dsn: str) -> str | None:
    keywords = _keyword_values(dsn)
    if keywords is not None:
        return f"it is a keyword/value string, and pgqueue takes a URL: {_as_url(keywords)}"
    try:
        parts = urlsplit(dsn)
    except ValueError as error:  # "Invalid IPv6 URL"
        return f"{error}; write it as {_URL_FORM}"
    if not parts.scheme:
        return f"it is not a URL: write it as {_URL_FORM}"
    if parts.scheme not in _SCHEMES:
        return f"the scheme must be postgresql:// or postgres://, not {parts.scheme}://"
    user_info, _, hosts = parts.netloc.rpartition("@")
    if "@" in user_info:
        return f"the user or password holds an unencoded '@': {_ENCODE}"
    problem = _host_list_problem(hosts, in_netloc=True)
    if problem is not None and "@" in dsn.partition("://")[2] and not user_info:
        # An unencoded / ? or # in the password ended the host early: echo none of it.
        return f"an '@' comes after the host: {_ENCODE}"
    try:  # strictly, as asyncpg parses it
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=True).items()}
    except ValueError:  # its message would echo the field, which may be a password
        return "the query string must be key=value pairs joined by &"
    return problem or _query_problem(query, has_host=bool(hosts))


def _host_list_problem(hosts: str, *, in_netloc: bool) -> str | None:
    """None if every ``host[:port]`` of a comma-separated list is well formed."""
    if not hosts:
        return None
    for host in hosts.split(","):
        if not host:
            return f"the host list {hosts!r} has an empty entry"
        if host.startswith("/"):  # a Unix socket directory
            continue
        ipv6 = _IPV6_HOST.fullmatch(host)
        if host.startswith("[") and ipv6 is None:
            return f"{host!r} is not an IPv6 address in brackets, such as [::1]:5432"
        port = (ipv6.group("port") or "") if ipv6 else host.partition(":")[2]
        if port and not _is_port(unquote(port) if in_netloc else port):
            return f"the port {port!r} of {host!r} is not a number from 1 to 65535"
    return None


def _query_problem(query: dict[str, str], *, has_host: bool) -> str | None:
    for key, allowed in (
        ("sslmode", _SSL_MODES),
        ("sslnegotiation", _SSL_NEGOTIATIONS),
        ("target_session_attrs", _SESSION_ATTRS),
    ):
        value = query.get(key)
        if value is None:
            continue
        # asyncpg takes verify_full for verify-full
        if (value.replace("_", "-") if key == "sslmode" else value) not in allowed:
            return f"{key}={value!r} must be one of {', '.join(allowed)}"
    ports = [p for p in query.get("port", "").split(",") if p]
    bad = [p for p in ports if not _is_port(p)]
    if bad:
        return f"port={query['port']!r}: {bad[0]!r} is not a number from 1 to 65535"
    hosts = query.get("host", "")
    if not has_host and hosts and len(ports) > 1 and len(ports) != len(hosts.split(",")):
        return f"host={hosts!r} names {len(hosts.split(','))} hosts but port= gives {len(ports)}"
    return None if has_host else _host_list_problem(hosts, in_netloc=False)


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 1 <= int(text) <= 65535


def _keyword_values(dsn: str) -> dict[str, str] | None:
    """The pairs of a libpq keyword/value string (``host=db dbname=app``), else None."""
    pairs: dict[str, str] = {}
    position = 0
    while position < len(dsn):
        match = _KEYWORD_VALUE.match(dsn, position)
        if match is None:
            return None
        key, value = match.groups()
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs[key] = value
        position = match.end()
    return pairs or None


def _as_url(keywords: dict[str, str]) -> str:
    """The URL for libpq keywords, the password left as ***."""
    user = quote(keywords.pop("user", ""), safe="")
    if keywords.pop("password", None) is not None:
        user += ":***"
    hosts = keywords.pop("host", "").split(",")
    ports = keywords.pop("port", "").split(",")
    if any(h.startswith("/") for h in hosts):  # socket directories go in the query
        keywords = {"host": ",".join(hosts), "port": ",".join(ports), **keywords}
        hosts, ports = [""], [""]
    if len(ports) == 1:
        ports = ports * len(hosts)
    netloc = ",".join(f"{h}:{p}" if p else h for h, p in zip_longest(hosts, ports, fillvalue=""))
    database = quote(keywords.pop("dbname", ""), safe="")
    hidden = {k: "***" if "password" in k else v for k, v in keywords.items() if v}
    query = urlencode(hidden, safe="/,*")
    return f"postgresql://{user + '@' if user else ''}{netloc}/{database}" + (
        f"?{query}" if query else ""
    )
