"""Proof of delivery, blobs, requirements, overrides and the audit chain (issue #13).

* ``blobs``: one row per stored blob, addressed by the SHA-256 of its bytes (stored once).
* ``proof_requirements``: what closing a stop as delivered needs; the row without an order is
  the organisation's default, a row with one replaces it for that order.
* ``proofs`` (one per closed stop) and ``proof_images`` (photos, label photos and the
  signature, each a served copy and a thumbnail); ``(org, driver, idempotency key)`` is unique,
  so a replayed upload stores nothing twice.
* ``proof_overrides``: a dispatcher waiving requirements for one stop, with a reason.
* ``audit_log``: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE), hash-chained per
  organisation: ``hash = sha256(prev_hash || record)``.
* ``stops`` gain the failure code, the attempt number and the parcels flagged at capture;
  ``orders`` gain the attempt number. A failed stop no longer holds its order's one live
  stop, so the order can go on a later day's route for another attempt.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE blobs (
        sha256        text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        size_bytes    bigint      NOT NULL CHECK (size_bytes >= 0),
        content_type  text        NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE proof_requirements (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id          bigint   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        order_id        bigint,
        photo           boolean  NOT NULL DEFAULT false,
        signature       boolean  NOT NULL DEFAULT false,
        all_parcels     boolean  NOT NULL DEFAULT false,
        recipient_name  boolean  NOT NULL DEFAULT false,
        min_age         smallint CHECK (min_age BETWEEN 1 AND 99),
        updated_at      timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT proof_requirements_order_fk
            FOREIGN KEY (org_id, order_id) REFERENCES orders (org_id, id) ON DELETE CASCADE
    );
    CREATE UNIQUE INDEX proof_requirements_default ON proof_requirements (org_id)
        WHERE order_id IS NULL;
    CREATE UNIQUE INDEX proof_requirements_order ON proof_requirements (org_id, order_id)
        WHERE order_id IS NOT NULL;

    ALTER TABLE orders ADD COLUMN attempt smallint NOT NULL DEFAULT 1 CHECK (attempt >= 1);
    ALTER TABLE stops
        ADD COLUMN failure_code text,
        ADD COLUMN attempt smallint NOT NULL DEFAULT 1 CHECK (attempt >= 1),
        ADD COLUMN missing_parcels text[] NOT NULL DEFAULT '{}',
        ADD COLUMN unexpected_parcels text[] NOT NULL DEFAULT '{}';
    DROP INDEX stops_live_order;
    CREATE UNIQUE INDEX stops_live_order ON stops (order_id)
        WHERE status NOT IN ('removed', 'failed');

    CREATE TABLE proofs (
        id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id              bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        stop_id             bigint      NOT NULL UNIQUE,
        order_id            bigint      NOT NULL,
        route_id            bigint      NOT NULL,
        driver_id           bigint      NOT NULL,
        day                 date        NOT NULL,
        outcome             text        NOT NULL CHECK (outcome IN ('delivered', 'failed')),
        attempt             smallint    NOT NULL DEFAULT 1,
        idempotency_key     text        NOT NULL,
        captured_at         timestamptz NOT NULL DEFAULT now(),
        device_time         timestamptz,
        lat                 float8      CHECK (lat BETWEEN -90 AND 90),
        lon                 float8      CHECK (lon BETWEEN -180 AND 180),
        accuracy_m          float8,
        recipient_name      text,
        notes               text,
        age_verified        boolean     NOT NULL DEFAULT false,
        scans               text[]      NOT NULL DEFAULT '{}',
        decoded_scans       text[]      NOT NULL DEFAULT '{}',
        missing_parcels     text[]      NOT NULL DEFAULT '{}',
        unexpected_parcels  text[]      NOT NULL DEFAULT '{}',
        failure_code        text,
        failure_text        text,
        CONSTRAINT proofs_stop_fk
            FOREIGN KEY (org_id, stop_id) REFERENCES stops (org_id, id) ON DELETE CASCADE,
        CONSTRAINT proofs_key UNIQUE (org_id, driver_id, idempotency_key)
    );
    CREATE INDEX proofs_org_day ON proofs (org_id, day);
    CREATE INDEX proofs_org_order ON proofs (org_id, order_id);
    CREATE INDEX proofs_org_driver ON proofs (org_id, driver_id, day);

    CREATE TABLE proof_images (
        proof_id      bigint   NOT NULL REFERENCES proofs (id) ON DELETE CASCADE,
        position      smallint NOT NULL,
        kind          text     NOT NULL CHECK (kind IN ('photo', 'label', 'signature')),
        sha256        text     NOT NULL REFERENCES blobs (sha256),
        thumb_sha256  text     NOT NULL REFERENCES blobs (sha256),
        width         integer  NOT NULL,
        height        integer  NOT NULL,
        taken_at      timestamptz,
        exif_lat      float8,
        exif_lon      float8,
        PRIMARY KEY (proof_id, position)
    );

    CREATE TABLE proof_overrides (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id     bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        stop_id    bigint      NOT NULL,
        waived     text[]      NOT NULL,
        reason     text        NOT NULL,
        api_key_id bigint,
        at         timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT proof_overrides_stop_fk
            FOREIGN KEY (org_id, stop_id) REFERENCES stops (org_id, id) ON DELETE CASCADE
    );
    CREATE INDEX proof_overrides_stop ON proof_overrides (stop_id);

    CREATE TABLE audit_log (
        org_id     bigint      NOT NULL REFERENCES orgs (id),
        seq        bigint      NOT NULL CHECK (seq >= 1),
        at         timestamptz NOT NULL,
        kind       text        NOT NULL,
        subject    text        NOT NULL,
        record     text        NOT NULL,
        prev_hash  bytea       NOT NULL,
        hash       bytea       NOT NULL,
        PRIMARY KEY (org_id, seq)
    );

    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
    END $$;
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE audit_log;
    DROP FUNCTION audit_log_append_only();
    DROP TABLE proof_overrides;
    DROP TABLE proof_images;
    DROP TABLE proofs;
    DROP INDEX stops_live_order;
    CREATE UNIQUE INDEX stops_live_order ON stops (order_id) WHERE status <> 'removed';
    ALTER TABLE stops DROP COLUMN failure_code, DROP COLUMN attempt,
        DROP COLUMN missing_parcels, DROP COLUMN unexpected_parcels;
    ALTER TABLE orders DROP COLUMN attempt;
    DROP TABLE proof_requirements;
    DROP TABLE blobs;
    """)
