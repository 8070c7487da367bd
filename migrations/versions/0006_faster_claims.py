"""Cheaper queue-name check on jobs; claims commit without waiting for the WAL flush.

Revision ID: 0006
Revises: 0005
"""

from pgqueue.migrate import run_sql_file

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "up")


def downgrade() -> None:
    run_sql_file(__file__, "down")
