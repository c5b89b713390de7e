"""Organisations, API keys, vehicles, drivers, devices and the positions time series.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

from store.timescale import positions_ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE orgs (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        timezone    text        NOT NULL DEFAULT 'UTC',
        created_at  timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE api_keys (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id        bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        name          text        NOT NULL,
        role          text        NOT NULL CHECK (role IN ('admin', 'dispatcher', 'integration')),
        token_hash    bytea       NOT NULL UNIQUE,
        token_prefix  text        NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        revoked_at    timestamptz
    );
    CREATE INDEX api_keys_org ON api_keys (org_id);

    CREATE TABLE vehicles (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id        bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        name          text        NOT NULL,
        external_ref  text,
        created_at    timestamptz NOT NULL DEFAULT now(),
        UNIQUE (org_id, external_ref)
    );

    CREATE TABLE drivers (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id        bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        phone         text,
        external_ref  text,
        vehicle_id    bigint      REFERENCES vehicles (id) ON DELETE SET NULL,
        active        boolean     NOT NULL DEFAULT true,
        created_at    timestamptz NOT NULL DEFAULT now(),
        UNIQUE (org_id, external_ref)
    );
    CREATE INDEX drivers_org ON drivers (org_id);

    CREATE TABLE devices (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id        bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        driver_id     bigint      NOT NULL REFERENCES drivers (id) ON DELETE CASCADE,
        name          text        NOT NULL DEFAULT 'phone',
        token_hash    bytea       NOT NULL UNIQUE,
        token_prefix  text        NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        revoked_at    timestamptz
    );
    CREATE INDEX devices_driver ON devices (driver_id);
    """)
    for statement in positions_ddl(op.get_bind()):
        op.execute(statement)


def downgrade() -> None:
    op.execute("""
    DROP TABLE positions;
    DROP TABLE devices;
    DROP TABLE drivers;
    DROP TABLE vehicles;
    DROP TABLE api_keys;
    DROP TABLE orgs;
    """)
