"""What a worker process loads: the CLI must not pull in alembic and SQLAlchemy (about 25 MiB of
resident memory per `pgqueue work` process) unless a command needs them."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_loads_neither_alembic_nor_sqlalchemy() -> None:
    code = (
        "import sys, pgqueue.cli, pgqueue.worker; "
        "print(sorted(m for m in ('alembic', 'sqlalchemy') if m in sys.modules))"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert loaded.stdout.strip() == "[]"


def test_pgqueue_leaves_opentelemetry_unimported_for_an_application_that_does_not_trace() -> None:
    code = (
        "import sys, pgqueue, pgqueue.worker, pgqueue.tracing; "
        "print(pgqueue.tracing.is_enabled(), 'opentelemetry' in sys.modules)"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert loaded.stdout.split() == ["False", "False"]
