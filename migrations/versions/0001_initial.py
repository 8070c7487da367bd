"""Jobs, workers and the SQL functions enqueue, enqueue_batch, cancel_job, retry_job.

Revision ID: 0001
Revises:
"""

from pgqueue.migrate import run_sql_file

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "up")


def downgrade() -> None:
    run_sql_file(__file__, "down")
