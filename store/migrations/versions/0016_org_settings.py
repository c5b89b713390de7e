"""Organisation settings an admin changes (issue #16, point 2): the locale and the default
service time, beside the time zone that was fixed at creation until now.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE orgs ADD COLUMN locale text NOT NULL DEFAULT 'en',"
        " ADD COLUMN default_service_s integer NOT NULL DEFAULT 0"
        "   CHECK (default_service_s BETWEEN 0 AND 86400)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE orgs DROP COLUMN locale, DROP COLUMN default_service_s")
