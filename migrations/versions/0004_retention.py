"""Autovacuum settings for the high-churn jobs table (retention).

Revision ID: 0004
Revises: 0003
"""

from pgqueue.migrate import run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "up")


def downgrade() -> None:
    run_sql_file(__file__, "down")
