"""pgqueue.next_run_at(): an idle worker's look-ahead by index descents, so jobs scheduled for
later or waiting in paused queues cost it nothing.

Revision ID: 0009
Revises: 0008
"""

from pgqueue.migrate import run_sql_file

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "up")


def downgrade() -> None:
    run_sql_file(__file__, "down")
