"""Plans remember when their job reached the ``plans`` stream.

A plan is committed before its job is appended to Redis; if that append fails (Redis away for a
moment), ``enqueued_at`` stays empty and the API processes' upkeep appends the job later, so an
accepted plan is never left queued for ever.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE plans ADD COLUMN enqueued_at timestamptz;
    UPDATE plans SET enqueued_at = created_at;
    CREATE INDEX plans_not_enqueued ON plans (created_at) WHERE enqueued_at IS NULL;
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX plans_not_enqueued;
    ALTER TABLE plans DROP COLUMN enqueued_at;
    """)
