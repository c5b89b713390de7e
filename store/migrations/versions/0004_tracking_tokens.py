"""Customer tracking links: a token per link, stored as its SHA-256, naming one order.

A link keeps working while its order is open and for ``LASTMILE_TRACKING_TTL_H`` hours after the
delivery ends (delivered, failed or cancelled); that is decided when the link is used, from the
order's own end time, so no job has to expire rows. ``expires_at`` is an outer limit for orders
that never end.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE tracking_tokens (
        token_hash  bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
        org_id      bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        order_id    bigint      NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz NOT NULL,
        CONSTRAINT tracking_tokens_order_fk
            FOREIGN KEY (org_id, order_id) REFERENCES orders (org_id, id) ON DELETE CASCADE
    );
    CREATE INDEX tracking_tokens_order ON tracking_tokens (org_id, order_id);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE tracking_tokens;")
