"""What was learned from an organisation's days (issue #15, point 3): driving speeds per H3 cell
and hour of week, service times per address, customer and order size.

One row per learning run, kept (a plan names the model it used by id); the newest row of an
organisation is the one in use. ``speeds`` and ``service`` are the learned tables as JSON
(``solver.learning.SpeedTable`` and ``ServiceTable``), NULL when there was too little to learn.
``orders.service_s_given`` says whether an order's service time was given with it (else it is
the organisation's default, which a learned figure may replace when planning).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE learned_models (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id      bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        learned_at  timestamptz NOT NULL DEFAULT now(),
        day_from    date        NOT NULL,
        day_to      date        NOT NULL,
        routes      integer     NOT NULL,
        speeds      jsonb,
        service     jsonb
    );
    CREATE INDEX learned_models_org ON learned_models (org_id, id DESC);

    ALTER TABLE orders ADD COLUMN service_s_given boolean NOT NULL DEFAULT true;
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE orders DROP COLUMN service_s_given;
    DROP TABLE learned_models;
    """)
