"""Notification rules and templates per organisation, and each message's text in the outbox.

``notification_rules``: one row per organisation that changed its rules, the document of
``/v1/notification-rules`` as JSON (an organisation without a row uses the deployment's
defaults). ``notification_templates``: an organisation's own template per event kind, channel
and language, over the built-in defaults; deleting one falls back to the default.

``outbox`` gains ``subject``, ``body_text`` and ``body_html``: the message as the notify worker
rendered it when it decided it, so what the customer reads reflects the state at that moment
(and a template changed later does not rewrite queued messages); ``link_token`` is the tracking
link the message carries, reused for the order's later messages. Rows without a body (written
before this revision) are rendered by the sender with the built-in default.

``outbox_once`` now includes the address: an organisation's several dispatcher addresses each
get one alert per order and kind.

``orders.language``: the customer's language for messages, when the order names one (else the
organisation's rules say).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE notification_rules (
        org_id      bigint      PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
        rules       jsonb       NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE notification_templates (
        org_id      bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        kind        text        NOT NULL,
        channel     text        NOT NULL CHECK (channel IN ('sms', 'email')),
        language    text        NOT NULL,
        subject     text,
        body_text   text        NOT NULL,
        body_html   text,
        updated_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, kind, channel, language)
    );

    ALTER TABLE outbox
        ADD COLUMN subject    text,
        ADD COLUMN body_text  text,
        ADD COLUMN body_html  text,
        ADD COLUMN link_token text;

    DROP INDEX outbox_once;
    CREATE UNIQUE INDEX outbox_once ON outbox (order_id, kind, recipient_kind, channel, address)
        WHERE kind <> 'eta_changed';

    ALTER TABLE orders ADD COLUMN language text;
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE orders DROP COLUMN language;
    DROP INDEX outbox_once;
    CREATE UNIQUE INDEX outbox_once ON outbox (order_id, kind, recipient_kind, channel)
        WHERE kind <> 'eta_changed';
    ALTER TABLE outbox
        DROP COLUMN subject, DROP COLUMN body_text, DROP COLUMN body_html, DROP COLUMN link_token;
    DROP TABLE notification_templates;
    DROP TABLE notification_rules;
    """)
