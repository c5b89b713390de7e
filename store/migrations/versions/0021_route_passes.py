"""What the learner cut from each route's track, kept (issue #15: the learner keeps per-day
passes instead of re-reading a month of positions every night).

One row per rolled-up route the learner read: its speed passes (driving per H3 cell and hour of
the week, ``solver.learning.SpeedPass`` as MessagePack) and the circuity of each leg between
its stops. ``basis`` names the learning rules and the time zone the passes were cut with, and
``facts_computed_at`` the route's fact they were cut from: a row whose basis differs, or whose
route fact was recomputed since, is cut again from the positions; the others are reused.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE route_passes (
        route_id           bigint      PRIMARY KEY REFERENCES routes (id) ON DELETE CASCADE,
        org_id             bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        day                date        NOT NULL,
        basis              text        NOT NULL,
        facts_computed_at  timestamptz NOT NULL,
        passes             bytea       NOT NULL,
        circuities         float8[]    NOT NULL,
        cut_at             timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX route_passes_org_day ON route_passes (org_id, day);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE route_passes;")
