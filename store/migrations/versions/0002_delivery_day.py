"""The delivery day's data: capacity dimensions, depots, carriers, vehicle details, shifts,
orders with their parcels, and idempotency keys of create commands.

Tenancy is enforced by the schema as well as by the queries: every table carries ``org_id``,
and every reference between organisation-owned rows is a composite foreign key
``(org_id, x_id) → x (org_id, id)``, so a row can never point at another organisation's row.
Constraint names are stable: ``store.delivery`` maps them to the API field at fault.

Amounts (a vehicle's capacity, an order's size) are ``jsonb`` objects ``{dimension: integer}``;
``orgs.dimensions`` orders the dimensions, and readers align the objects to that list (a
renamed or reordered dimension never rewrites rows). Time windows of orders are two aligned
``timestamptz[]`` columns (starts, ends).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE orgs
        ADD COLUMN dimensions text[] NOT NULL DEFAULT '{weight_kg,volume_l,parcels}',
        ADD CONSTRAINT orgs_dimensions_count CHECK (cardinality(dimensions) <= 16);

    -- Composite targets for the org-scoped foreign keys below.
    ALTER TABLE vehicles ADD CONSTRAINT vehicles_org_id_key UNIQUE (org_id, id);
    ALTER TABLE drivers ADD CONSTRAINT drivers_org_id_key UNIQUE (org_id, id);

    CREATE TABLE depots (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id        bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        address       text,
        lat           float8      NOT NULL CHECK (lat BETWEEN -90 AND 90),
        lon           float8      NOT NULL CHECK (lon BETWEEN -180 AND 180),
        external_ref  text,
        active        boolean     NOT NULL DEFAULT true,
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT depots_org_ref_key UNIQUE (org_id, external_ref),
        CONSTRAINT depots_org_id_key UNIQUE (org_id, id)
    );

    CREATE TABLE carriers (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id         bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        name           text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        kind           text        NOT NULL CHECK (kind IN ('own', 'partner')),
        contact_name   text,
        contact_phone  text,
        contact_email  text,
        external_ref   text,
        active         boolean     NOT NULL DEFAULT true,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT carriers_org_ref_key UNIQUE (org_id, external_ref),
        CONSTRAINT carriers_org_id_key UNIQUE (org_id, id)
    );

    ALTER TABLE vehicles
        ADD COLUMN type          text        NOT NULL DEFAULT 'van',
        ADD COLUMN capacity      jsonb       NOT NULL DEFAULT '{}',
        ADD COLUMN skills        text[]      NOT NULL DEFAULT '{}',
        ADD COLUMN fixed_cost    float8      NOT NULL DEFAULT 0 CHECK (fixed_cost >= 0),
        ADD COLUMN cost_per_km   float8      NOT NULL DEFAULT 0 CHECK (cost_per_km >= 0),
        ADD COLUMN cost_per_hour float8      NOT NULL DEFAULT 0 CHECK (cost_per_hour >= 0),
        ADD COLUMN carrier_id    bigint,
        ADD COLUMN active        boolean     NOT NULL DEFAULT true,
        ADD COLUMN updated_at    timestamptz NOT NULL DEFAULT now(),
        ADD CONSTRAINT vehicles_type CHECK (type IN
            ('van', 'cargo_bike', 'truck', 'car', 'bicycle', 'motorbike', 'on_foot')),
        ADD CONSTRAINT vehicles_capacity_object CHECK (jsonb_typeof(capacity) = 'object'),
        ADD CONSTRAINT vehicles_carrier_fk
            FOREIGN KEY (org_id, carrier_id) REFERENCES carriers (org_id, id);

    ALTER TABLE drivers
        ADD COLUMN carrier_id bigint,
        ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
        ADD CONSTRAINT drivers_carrier_fk
            FOREIGN KEY (org_id, carrier_id) REFERENCES carriers (org_id, id),
        ADD CONSTRAINT drivers_vehicle_fk
            FOREIGN KEY (org_id, vehicle_id) REFERENCES vehicles (org_id, id);

    CREATE TABLE shifts (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id          bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        driver_id       bigint      NOT NULL,
        vehicle_id      bigint      NOT NULL,
        day             date        NOT NULL,
        start_depot_id  bigint,
        start_lat       float8      CHECK (start_lat BETWEEN -90 AND 90),
        start_lon       float8      CHECK (start_lon BETWEEN -180 AND 180),
        end_depot_id    bigint,
        end_lat         float8      CHECK (end_lat BETWEEN -90 AND 90),
        end_lon         float8      CHECK (end_lon BETWEEN -180 AND 180),
        work_start      timestamptz NOT NULL,
        work_end        timestamptz NOT NULL,
        breaks          jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(breaks) = 'array'),
        max_duration_s  integer     CHECK (max_duration_s > 0),
        status          text        NOT NULL DEFAULT 'scheduled'
                                    CHECK (status IN ('scheduled', 'cancelled')),
        created_at      timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT shifts_work_window CHECK (work_start < work_end),
        -- a place is a depot or coordinates, never both; an end place may be absent (= start)
        CONSTRAINT shifts_start_place CHECK (
            (start_depot_id IS NOT NULL AND start_lat IS NULL AND start_lon IS NULL)
            OR (start_depot_id IS NULL AND start_lat IS NOT NULL AND start_lon IS NOT NULL)),
        CONSTRAINT shifts_end_place CHECK (
            end_depot_id IS NULL OR (end_lat IS NULL AND end_lon IS NULL)),
        CONSTRAINT shifts_end_coordinates CHECK ((end_lat IS NULL) = (end_lon IS NULL)),
        CONSTRAINT shifts_driver_fk
            FOREIGN KEY (org_id, driver_id) REFERENCES drivers (org_id, id) ON DELETE CASCADE,
        CONSTRAINT shifts_vehicle_fk
            FOREIGN KEY (org_id, vehicle_id) REFERENCES vehicles (org_id, id),
        CONSTRAINT shifts_start_depot_fk
            FOREIGN KEY (org_id, start_depot_id) REFERENCES depots (org_id, id),
        CONSTRAINT shifts_end_depot_fk
            FOREIGN KEY (org_id, end_depot_id) REFERENCES depots (org_id, id)
    );
    CREATE INDEX shifts_org_day ON shifts (org_id, day, status);
    CREATE INDEX shifts_driver_day ON shifts (driver_id, day);

    CREATE TABLE orders (
        id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id            bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        external_ref      text        NOT NULL CHECK (length(external_ref) BETWEEN 1 AND 100),
        customer_name     text,
        phone             text,
        email             text,
        address           text        NOT NULL,
        lat               float8      NOT NULL CHECK (lat BETWEEN -90 AND 90),
        lon               float8      NOT NULL CHECK (lon BETWEEN -180 AND 180),
        day               date        NOT NULL,
        window_starts     timestamptz[] NOT NULL DEFAULT '{}',
        window_ends       timestamptz[] NOT NULL DEFAULT '{}',
        service_s         integer     NOT NULL DEFAULT 0 CHECK (service_s BETWEEN 0 AND 86400),
        size              jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(size) = 'object'),
        priority          smallint    NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 2),
        required_skills   text[]      NOT NULL DEFAULT '{}',
        notes             text,
        status            text        NOT NULL DEFAULT 'pending' CHECK (status IN
                          ('pending', 'planned', 'dispatched', 'delivered', 'failed', 'cancelled')),
        cancel_reason     text,
        cancelled_at      timestamptz,
        created_at        timestamptz NOT NULL DEFAULT now(),
        updated_at        timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT orders_org_ref_key UNIQUE (org_id, external_ref),
        CONSTRAINT orders_org_id_key UNIQUE (org_id, id),
        CONSTRAINT orders_windows_aligned
            CHECK (cardinality(window_starts) = cardinality(window_ends))
    );
    CREATE INDEX orders_org_day_status ON orders (org_id, day, status);

    CREATE TABLE parcels (
        id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id    bigint NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        order_id  bigint NOT NULL,
        position  smallint NOT NULL,
        barcode   text   NOT NULL CHECK (length(barcode) BETWEEN 1 AND 100),
        CONSTRAINT parcels_order_fk
            FOREIGN KEY (org_id, order_id) REFERENCES orders (org_id, id) ON DELETE CASCADE,
        CONSTRAINT parcels_order_barcode_key UNIQUE (order_id, barcode)
    );
    -- a scanned barcode finds its order
    CREATE INDEX parcels_org_barcode ON parcels (org_id, barcode);

    CREATE TABLE idempotency_keys (
        org_id        bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        key           text        NOT NULL,
        request_hash  bytea       NOT NULL,
        status        smallint    NOT NULL,
        response      bytea       NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, key)
    );
    CREATE INDEX idempotency_keys_expiry ON idempotency_keys (org_id, created_at);
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE idempotency_keys;
    DROP TABLE parcels;
    DROP TABLE orders;
    DROP TABLE shifts;
    ALTER TABLE drivers
        DROP CONSTRAINT drivers_vehicle_fk,
        DROP CONSTRAINT drivers_carrier_fk,
        DROP COLUMN updated_at,
        DROP COLUMN carrier_id;
    ALTER TABLE vehicles
        DROP CONSTRAINT vehicles_carrier_fk,
        DROP CONSTRAINT vehicles_capacity_object,
        DROP CONSTRAINT vehicles_type,
        DROP COLUMN updated_at,
        DROP COLUMN active,
        DROP COLUMN carrier_id,
        DROP COLUMN cost_per_hour,
        DROP COLUMN cost_per_km,
        DROP COLUMN fixed_cost,
        DROP COLUMN skills,
        DROP COLUMN capacity,
        DROP COLUMN type;
    DROP TABLE carriers;
    DROP TABLE depots;
    ALTER TABLE drivers DROP CONSTRAINT drivers_org_id_key;
    ALTER TABLE vehicles DROP CONSTRAINT vehicles_org_id_key;
    ALTER TABLE orgs DROP CONSTRAINT orgs_dimensions_count, DROP COLUMN dimensions;
    """)
