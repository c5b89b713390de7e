"""A fair planning queue in PostgreSQL, and plans that can be cancelled (issue #14).

The planner processes take plans from the ``plans`` table itself (the ``plans`` stream only
wakes them): at most one running plan per organisation (a partial unique index, so two
planners racing cannot both start one), organisations served in turn, and a running plan held
under a lease its planner renews (``claimed_by``, ``lease_until``), so a killed planner's plan
is taken over once the lease runs out. ``claims`` counts how often a plan was started, so one
that keeps killing its planner fails instead of looping. ``cancel_requested_at`` is how the API
asks a planner (another process) to stop a plan; ``cancelled`` is its final status.

Plans running at upgrade time belong to planners of the previous version, which stop for the
upgrade: they are queued again and computed afresh.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE plans DROP CONSTRAINT plans_status_check;
    ALTER TABLE plans ADD CONSTRAINT plans_status_check
        CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled'));
    ALTER TABLE plans
        ADD COLUMN claimed_by          text,
        ADD COLUMN lease_until         timestamptz,
        ADD COLUMN claims              integer     NOT NULL DEFAULT 0,
        ADD COLUMN cancel_requested_at timestamptz;
    UPDATE plans SET status = 'queued', progress = '{}' WHERE status = 'running';
    CREATE UNIQUE INDEX plans_one_running_per_org ON plans (org_id) WHERE status = 'running';
    CREATE INDEX plans_waiting ON plans (created_at) WHERE status IN ('queued', 'running');
    CREATE INDEX plans_org_started ON plans (org_id, started_at);
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX plans_org_started;
    DROP INDEX plans_waiting;
    DROP INDEX plans_one_running_per_org;
    UPDATE plans SET status = 'failed', error = coalesce(error, 'cancelled')
        WHERE status = 'cancelled';
    ALTER TABLE plans
        DROP COLUMN cancel_requested_at,
        DROP COLUMN claims,
        DROP COLUMN lease_until,
        DROP COLUMN claimed_by;
    ALTER TABLE plans DROP CONSTRAINT plans_status_check;
    ALTER TABLE plans ADD CONSTRAINT plans_status_check
        CHECK (status IN ('queued', 'running', 'done', 'failed'));
    """)
