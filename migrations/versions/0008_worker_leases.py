"""Each worker's lease in its row (workers.heartbeat_timeout): the rescue judges every worker by
the lease it declared, and a live lease keeps its row.

Revision ID: 0008
Revises: 0007
"""

from pgqueue.migrate import run_sql_file

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "up")


def downgrade() -> None:
    run_sql_file(__file__, "down")
