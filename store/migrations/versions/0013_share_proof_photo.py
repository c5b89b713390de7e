"""Whether an organisation shows its proof photos to customers (issue #13, point 8).

A proof photo shows a customer's door, sometimes a neighbour's face: an organisation decides
whether its customers see it on the tracking page. Off until an admin turns it on.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE orgs ADD COLUMN share_proof_photo boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE orgs DROP COLUMN share_proof_photo")
