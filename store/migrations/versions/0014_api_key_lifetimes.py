"""API keys that expire, and when each was last used (issue #16, point 1).

An integration's key can be issued for a time (``expires_at``) and rotated with an overlap
(the old key expires a grace period after its successor is issued). ``last_used_at`` tells an
administrator which keys are still in use; it is written at most once a minute per key.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE api_keys ADD COLUMN expires_at timestamptz,"
        " ADD COLUMN last_used_at timestamptz"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE api_keys DROP COLUMN expires_at, DROP COLUMN last_used_at")
