"""Worker-default retry policy (nullable max_attempts), cancelling running jobs, retry_failed_jobs.

Revision ID: 0002
Revises: 0001
"""

from pgqueue.migrate import run_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "up")


def downgrade() -> None:
    run_sql_file(__file__, "down")
