"""The notification outbox, and a customer's opt-out on orders.

The notify worker writes each message it decides to ``outbox`` in the transaction that decides
it; a sender drains due rows (``state``, ``next_attempt_at``) with ``FOR UPDATE SKIP LOCKED``.
``idempotency_key`` is unique, so a redelivered events entry stores nothing twice; the partial
unique index ``outbox_once`` keeps one message per order, kind, recipient and channel (but for
``eta_changed``, which the worker throttles instead), even when two workers race.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE orders ADD COLUMN notifications_opt_out boolean NOT NULL DEFAULT false;

    CREATE TABLE outbox (
        id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id           bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        order_id         bigint      REFERENCES orders (id) ON DELETE CASCADE,
        event_id         text        NOT NULL,
        kind             text        NOT NULL,
        recipient_kind   text        NOT NULL
                         CHECK (recipient_kind IN ('customer', 'dispatcher', 'integration')),
        channel          text        NOT NULL CHECK (channel IN ('sms', 'email', 'webhook')),
        address          text        NOT NULL,
        template         text        NOT NULL,
        language         text        NOT NULL,
        idempotency_key  text        NOT NULL,
        window_lower     timestamptz,
        window_upper     timestamptz,
        state            text        NOT NULL DEFAULT 'pending' CHECK (state IN
                         ('pending', 'sending', 'sent', 'delivered', 'failed', 'dead')),
        attempts         integer     NOT NULL DEFAULT 0,
        next_attempt_at  timestamptz NOT NULL DEFAULT now(),
        last_error       text,
        provider_id      text,
        created_at       timestamptz NOT NULL DEFAULT now(),
        updated_at       timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT outbox_idempotency_key UNIQUE (idempotency_key)
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
    CREATE INDEX outbox_order ON outbox (order_id, created_at);
    CREATE UNIQUE INDEX outbox_once ON outbox (order_id, kind, recipient_kind, channel)
        WHERE kind <> 'eta_changed';
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE outbox;
    ALTER TABLE orders DROP COLUMN notifications_opt_out;
    """)
