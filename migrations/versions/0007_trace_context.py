"""Trace context of the enqueuing request in each job's row; completions lock rows in id order;
the queue_summary view (live counts by partial index).

Revision ID: 0007
Revises: 0006
"""

from pgqueue.migrate import run_sql_file

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "up")


def downgrade() -> None:
    run_sql_file(__file__, "down")
