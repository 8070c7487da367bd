"""A throwaway PostgreSQL cluster a test may stop and start, unlike the shared server.

It uses the binaries the ``pgserver`` package bundles (and its ``initdb``/``pg_ctl`` helpers,
which run them as the system user ``pgserver`` when we are root, as PostgreSQL refuses to run as
root). It listens on a Unix socket only, in a short temporary directory (sun_path holds ~100
bytes), so it never collides with another server's port. ``restart()`` keeps the socket, so the
DSN stays valid across restarts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pgserver's platformdirs warns about XDG_RUNTIME_DIR
    from pgserver import _commands
    from pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

_SYSTEM_USER = "pgserver"  # what pgserver itself runs postgres as when it is started by root
_TIMEOUT = 60  # seconds any pg_ctl/initdb call may take


class Cluster:
    """One PostgreSQL cluster in ``directory``: data in ``data/``, socket and log beside it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.log = directory / "postgres.log"
        self._user = _SYSTEM_USER if os.geteuid() == 0 else None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.directory}"

    def init(self) -> None:
        if self._user is not None:
            self._let_system_user_in()
        self._run(
            _commands.initdb,
            ["--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync"],
        )

    def start(self) -> None:
        options = [
            "-h ''",  # no TCP at all: the socket below only
            f"-k {self.directory}",
            "-c fsync=off",  # throwaway data; a clean (fast) shutdown still checkpoints
            "-c max_connections=100",
        ]
        args = ["-w", "-t", str(_TIMEOUT), "-l", str(self.log)]
        for option in options:
            args += ["-o", option]
        self._run(_commands.pg_ctl, [*args, "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run(_commands.pg_ctl, ["-w", "-t", str(_TIMEOUT), "-m", mode, "stop"])

    def restart(self) -> None:
        """Stop (fast: every session is terminated) and start again on the same socket."""
        self.stop("fast")
        self.start()

    def is_running(self) -> bool:
        try:
            self._run(_commands.pg_ctl, ["status"])
        except subprocess.CalledProcessError:
            return False
        return True

    def destroy(self) -> None:
        """Stop the server if it runs (immediately: nothing in it matters) and delete it all."""
        try:
            if (self.data / "postmaster.pid").exists():
                with contextlib.suppress(subprocess.CalledProcessError):
                    self.stop("immediate")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _run(self, command: Any, args: list[str]) -> str:
        output: str = command(args, pgdata=self.data, user=self._user, timeout=_TIMEOUT)
        return output

    def _let_system_user_in(self) -> None:
        """As pgserver does when run by root: a system user that may read the binaries and
        write our directory (socket, log, data)."""
        import pwd

        ensure_user_exists(_SYSTEM_USER)
        binaries = _commands.POSTGRES_BIN_PATH
        ensure_prefix_permissions(binaries)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(binaries, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(binaries.parent / "lib", readable)
        ensure_prefix_permissions(self.directory)
        entry = pwd.getpwnam(_SYSTEM_USER)
        os.chown(self.directory, entry.pw_uid, entry.pw_gid)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A started cluster in a fresh short temporary directory; always stopped and removed."""
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="pgq-")))
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
