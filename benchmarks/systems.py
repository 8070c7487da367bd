"""The systems compared, what each needs installed, and how the child process loads one.

Loading imports the system's library, so the driver only checks that its distributions are
installed; each run loads its system in a child process of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from benchmarks.peer import System


@dataclass(frozen=True)
class SystemSpec:
    name: str
    requires: tuple[str, ...]  # distributions that must be installed
    expected: dict[str, str]  # distribution -> version prefix the research measured
    load: Callable[[], System]

    def missing(self) -> list[str]:
        return [distribution for distribution in self.requires if installed(distribution) is None]

    def unexpected_versions(self) -> list[str]:
        """``name version`` of each installed distribution whose version is not the expected."""
        return [
            f"{distribution} {found} (expected {prefix}*)"
            for distribution, prefix in self.expected.items()
            if (found := installed(distribution)) is not None and not found.startswith(prefix)
        ]


def installed(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _load_raw() -> System:
    from benchmarks.raw import RawPeer
    from benchmarks.workloads import GenericSystem

    return GenericSystem(RawPeer())


def _load_pgqueue() -> System:
    from benchmarks.pgqueue_peer import PgqueueSystem

    return PgqueueSystem()


def _load_pgqueuer() -> System:
    from benchmarks.pgqueuer_peer import PgqueuerPeer
    from benchmarks.workloads import GenericSystem

    return GenericSystem(PgqueuerPeer())


def _load_procrastinate() -> System:
    from benchmarks.procrastinate_peer import ProcrastinatePeer
    from benchmarks.workloads import GenericSystem

    return GenericSystem(ProcrastinatePeer())


SYSTEMS = {
    spec.name: spec
    for spec in (
        SystemSpec("raw", ("asyncpg",), {}, _load_raw),
        SystemSpec("pgqueue", ("pgqueue", "asyncpg"), {}, _load_pgqueue),
        SystemSpec("pgqueuer", ("pgqueuer", "asyncpg"), {"pgqueuer": "1.6."}, _load_pgqueuer),
        SystemSpec(
            "procrastinate",
            ("procrastinate", "psycopg", "psycopg-pool"),
            {"procrastinate": "3.10."},
            _load_procrastinate,
        ),
    )
}
