"""Planning jobs, dispatched routes and their stops.

A plan is a job: queued, running (with progress), done (with its result) or failed. Dispatching
a plan's route creates a ``routes`` row and one ``stops`` row per visit; re-optimisation changes
stops in place and bumps the route's ``version``, which drivers' apps use to tell a newer route
from an older one. At most one live stop (not ``removed``) exists per order.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE shifts ADD CONSTRAINT shifts_org_id_key UNIQUE (org_id, id);

    CREATE TABLE plans (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id       bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        day          date        NOT NULL,
        status       text        NOT NULL DEFAULT 'queued'
                                 CHECK (status IN ('queued', 'running', 'done', 'failed')),
        options      jsonb       NOT NULL DEFAULT '{}',
        order_ids    bigint[],
        progress     jsonb       NOT NULL DEFAULT '{}',
        result       jsonb,
        error        text,
        created_at   timestamptz NOT NULL DEFAULT now(),
        started_at   timestamptz,
        finished_at  timestamptz,
        CONSTRAINT plans_org_id_key UNIQUE (org_id, id)
    );
    CREATE INDEX plans_org_day ON plans (org_id, day);

    CREATE TABLE routes (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id         bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        plan_id        bigint      NOT NULL,
        shift_id       bigint      NOT NULL,
        driver_id      bigint      NOT NULL,
        vehicle_id     bigint      NOT NULL,
        day            date        NOT NULL,
        status         text        NOT NULL DEFAULT 'dispatched'
                       CHECK (status IN ('dispatched', 'started', 'completed', 'cancelled')),
        version        integer     NOT NULL DEFAULT 1,
        planned_start  timestamptz NOT NULL,
        planned_end    timestamptz NOT NULL,
        distance_m     integer     NOT NULL DEFAULT 0,
        dispatched_at  timestamptz NOT NULL DEFAULT now(),
        started_at     timestamptz,
        completed_at   timestamptz,
        CONSTRAINT routes_org_id_key UNIQUE (org_id, id),
        CONSTRAINT routes_plan_shift_key UNIQUE (plan_id, shift_id),
        CONSTRAINT routes_plan_fk FOREIGN KEY (org_id, plan_id) REFERENCES plans (org_id, id),
        CONSTRAINT routes_shift_fk FOREIGN KEY (org_id, shift_id) REFERENCES shifts (org_id, id),
        CONSTRAINT routes_driver_fk FOREIGN KEY (org_id, driver_id) REFERENCES drivers (org_id, id),
        CONSTRAINT routes_vehicle_fk
            FOREIGN KEY (org_id, vehicle_id) REFERENCES vehicles (org_id, id)
    );
    CREATE INDEX routes_driver_day ON routes (driver_id, day);
    CREATE INDEX routes_org_day ON routes (org_id, day);

    CREATE TABLE stops (
        id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id             bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        route_id           bigint      NOT NULL,
        order_id           bigint      NOT NULL,
        seq                integer     NOT NULL,
        status             text        NOT NULL DEFAULT 'pending'
                           CHECK (status IN
                               ('pending', 'arrived', 'delivered', 'failed', 'removed')),
        planned_arrival    timestamptz NOT NULL,
        planned_departure  timestamptz NOT NULL,
        lateness_s         integer     NOT NULL DEFAULT 0,
        arrived_at         timestamptz,
        completed_at       timestamptz,
        failure_reason     text,
        updated_at         timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT stops_org_id_key UNIQUE (org_id, id),
        CONSTRAINT stops_route_fk
            FOREIGN KEY (org_id, route_id) REFERENCES routes (org_id, id) ON DELETE CASCADE,
        CONSTRAINT stops_order_fk FOREIGN KEY (org_id, order_id) REFERENCES orders (org_id, id)
    );
    CREATE INDEX stops_route_seq ON stops (route_id, seq);
    CREATE UNIQUE INDEX stops_live_order ON stops (order_id) WHERE status <> 'removed';
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE stops;
    DROP TABLE routes;
    DROP TABLE plans;
    ALTER TABLE shifts DROP CONSTRAINT shifts_org_id_key;
    """)
