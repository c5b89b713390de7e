"""Analytics facts (issue #15, point 1): what each stop and each route really did.

``stop_signals`` keeps what the ETA worker detected at a stop (arrival, departure) for stops
whose driver app never reported arriving. ``eta_publications`` keeps each arrival window the
ETA worker published for a stop (``at``: the instant it was computed), so that the window in
force 5, 15, 30 and 60 minutes before the arrival can be scored. ``stop_facts`` and
``route_facts`` are one row per closed stop and per completed route, written by the rollups
worker (``INSERT ... ON CONFLICT DO UPDATE``: recomputing is safe);
``stop_eta_errors`` holds a stop's ETA error per horizon. ``day`` is the route's day, which is
the organisation's local day, so reports group by the day the organisation lived.

Vehicles gain what their driving costs the air: ``energy`` (what they run on) and
``consumption_per_km`` (litres, or kWh for ``electric``, per km driven).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE vehicles
        ADD COLUMN energy text CHECK (energy IN ('diesel', 'petrol', 'electric', 'none')),
        ADD COLUMN consumption_per_km float8
            CHECK (consumption_per_km >= 0 AND consumption_per_km <= 10);

    CREATE TABLE stop_signals (
        stop_id      bigint      PRIMARY KEY REFERENCES stops (id) ON DELETE CASCADE,
        org_id       bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        arrived_at   timestamptz,
        departed_at  timestamptz
    );

    CREATE TABLE eta_publications (
        stop_id    bigint      NOT NULL REFERENCES stops (id) ON DELETE CASCADE,
        at         timestamptz NOT NULL,
        likely_at  timestamptz NOT NULL,
        lower_at   timestamptz NOT NULL,
        upper_at   timestamptz NOT NULL
    );
    CREATE UNIQUE INDEX eta_publications_key ON eta_publications (stop_id, at);

    CREATE TABLE stop_facts (
        stop_id            bigint      PRIMARY KEY REFERENCES stops (id) ON DELETE CASCADE,
        org_id             bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        day                date        NOT NULL,
        route_id           bigint      NOT NULL,
        order_id           bigint      NOT NULL,
        driver_id          bigint      NOT NULL,
        carrier_id         bigint,
        zone               text        NOT NULL,
        address_key        text        NOT NULL,
        outcome            text        NOT NULL CHECK (outcome IN ('delivered', 'failed')),
        failure_code       text,
        attempt            smallint    NOT NULL,
        planned_arrival    timestamptz NOT NULL,
        arrived_at         timestamptz,
        arrival_source     text        NOT NULL
                           CHECK (arrival_source IN ('reported', 'detected', 'completion')),
        completed_at       timestamptz NOT NULL,
        window_start       timestamptz,
        window_end         timestamptz,
        punctuality        text        CHECK (punctuality IN ('early', 'on_time', 'late')),
        lateness_s         integer     NOT NULL DEFAULT 0,
        wait_s             integer     NOT NULL DEFAULT 0,
        service_s          integer     NOT NULL DEFAULT 0,
        planned_service_s  integer     NOT NULL DEFAULT 0,
        arrival_error_s    integer     NOT NULL,
        completion_m       float8,
        computed_at        timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX stop_facts_org_day ON stop_facts (org_id, day);

    CREATE TABLE stop_eta_errors (
        stop_id      bigint   NOT NULL REFERENCES stop_facts (stop_id) ON DELETE CASCADE,
        horizon_min  smallint NOT NULL,
        error_s      integer  NOT NULL,
        inside       boolean  NOT NULL,
        PRIMARY KEY (stop_id, horizon_min)
    );

    CREATE TABLE route_facts (
        route_id            bigint      PRIMARY KEY REFERENCES routes (id) ON DELETE CASCADE,
        org_id              bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        day                 date        NOT NULL,
        driver_id           bigint      NOT NULL,
        carrier_id          bigint,
        vehicle_id          bigint      NOT NULL,
        stops               integer     NOT NULL,
        delivered           integer     NOT NULL,
        failed              integer     NOT NULL,
        planned_m           float8      NOT NULL,
        driven_m            float8      NOT NULL,
        planned_s           integer     NOT NULL,
        actual_s            integer     NOT NULL,
        moving_s            integer     NOT NULL,
        idle_s              integer     NOT NULL,
        fixes               integer     NOT NULL,
        jumps               integer     NOT NULL,
        energy              text,
        energy_used         float8,
        co2_kg              float8,
        started_at          timestamptz NOT NULL,
        completed_at        timestamptz NOT NULL,
        computed_at         timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX route_facts_org_day ON route_facts (org_id, day);
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE route_facts;
    DROP TABLE stop_eta_errors;
    DROP TABLE stop_facts;
    DROP TABLE eta_publications;
    DROP TABLE stop_signals;
    ALTER TABLE vehicles DROP COLUMN consumption_per_km, DROP COLUMN energy;
    """)
