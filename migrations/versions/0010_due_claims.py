"""pgqueue.claim_jobs() claims one priority at a time, so its index scan stops at the first job
not yet due: jobs scheduled for later cost a claim nothing.

Revision ID: 0010
Revises: 0009
"""

from pgqueue.migrate import run_sql_file

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "up")


def downgrade() -> None:
    run_sql_file(__file__, "down")
