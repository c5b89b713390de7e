"""An organisation setting: re-sequence a late driver's route by itself (issue #16, point 4).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE orgs ADD COLUMN auto_resequence boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE orgs DROP COLUMN auto_resequence")
