"""Webhook endpoints per organisation, one delivery per (event, endpoint), and each attempt.

``webhook_endpoints``: where an organisation's integration listens (``url``), the Standard
Webhooks ``secret`` that signs what it is sent (kept in clear: signing needs it; the API shows
it once), the event types it subscribes to (``*`` for all), ``enabled``, and the run of
``consecutive_failures`` that disables it. After a rotation the ``previous_secret`` also signs
until ``previous_secret_until``, so receivers can switch without losing a delivery.
``disabled_announced`` is false from the moment the sender disables an endpoint until the
``webhook_disabled`` event is on the stream, so a sender killed in between announces it on its
next pass.

``webhook_deliveries``: one row per events entry and endpoint (unique ``(endpoint_id,
event_id)``), written by the fan-out before the entry is acknowledged; ``body`` is the signed
JSON, the same bytes on every attempt and replay, and ``webhook_id`` its stable
``webhook-id``. ``attempts`` counts every attempt (the log's numbering), ``tries`` those since
the last replay (the backoff's). ``webhook_attempts``: one row per attempt.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE webhook_endpoints (
        id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id                bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        url                   text        NOT NULL,
        description           text        NOT NULL DEFAULT '',
        secret                text        NOT NULL,
        event_types           text[]      NOT NULL,
        enabled               boolean     NOT NULL DEFAULT true,
        consecutive_failures  integer     NOT NULL DEFAULT 0,
        disabled_at           timestamptz,
        disabled_reason       text,
        disabled_announced    boolean     NOT NULL DEFAULT true,
        secret_rotated_at     timestamptz NOT NULL DEFAULT now(),
        previous_secret       text,
        previous_secret_until timestamptz,
        created_at            timestamptz NOT NULL DEFAULT now(),
        updated_at            timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, id);
    CREATE INDEX webhook_endpoints_unannounced ON webhook_endpoints (id)
        WHERE NOT disabled_announced;

    CREATE TABLE webhook_deliveries (
        id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id            bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        endpoint_id       bigint      NOT NULL REFERENCES webhook_endpoints (id)
                                      ON DELETE CASCADE,
        event_id          text        NOT NULL,
        event_type        text        NOT NULL,
        event_at          timestamptz NOT NULL,
        webhook_id        text        NOT NULL,
        body              bytea       NOT NULL,
        state             text        NOT NULL DEFAULT 'pending'
                          CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
        attempts          integer     NOT NULL DEFAULT 0,
        tries             integer     NOT NULL DEFAULT 0,
        next_attempt_at   timestamptz NOT NULL DEFAULT now(),
        last_status_code  integer,
        last_error        text,
        created_at        timestamptz NOT NULL DEFAULT now(),
        updated_at        timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_id)
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
        WHERE state IN ('pending', 'sending');
    CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, id);
    CREATE INDEX webhook_deliveries_time ON webhook_deliveries (endpoint_id, event_at);

    CREATE TABLE webhook_attempts (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        delivery_id  bigint      NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
        attempt      integer     NOT NULL,
        started_at   timestamptz NOT NULL,
        finished_at  timestamptz NOT NULL,
        outcome      text        NOT NULL
                     CHECK (outcome IN ('delivered', 'retry', 'failed', 'gone', 'refused')),
        status_code  integer,
        latency_ms   integer     NOT NULL,
        address      text,
        error        text,
        CONSTRAINT webhook_attempts_once UNIQUE (delivery_id, attempt)
    );
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE webhook_attempts;
    DROP TABLE webhook_deliveries;
    DROP TABLE webhook_endpoints;
    """)
