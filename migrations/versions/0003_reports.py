"""Reporting views: queue_stats, failed_jobs, throughput_per_minute, job_durations.

Revision ID: 0003
Revises: 0002
"""

from pgqueue.migrate import run_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "up")


def downgrade() -> None:
    run_sql_file(__file__, "down")
