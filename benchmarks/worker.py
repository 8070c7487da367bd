"""``python -m benchmarks.worker SYSTEM DSN``: one worker process of a peer, until SIGTERM.

A module of its own, so that each peer's module is imported under its own name (Procrastinate
warns about an app defined in ``__main__``) and a worker imports only its own peer's library.
"""

from __future__ import annotations

import sys


def main(system: str, dsn: str) -> None:
    if system == "raw":
        from benchmarks import raw

        raw.main(dsn)
    elif system == "pgqueuer":
        from benchmarks import pgqueuer_peer

        pgqueuer_peer.main(dsn)
    elif system == "procrastinate":
        from benchmarks import procrastinate_peer

        procrastinate_peer.main(dsn)
    else:
        sys.exit(f"benchmarks.worker: no worker for {system!r}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
