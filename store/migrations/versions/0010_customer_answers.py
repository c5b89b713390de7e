"""The customer answers back: SMS opt-outs per organisation, delivery instructions, requests
for another day, and ratings.

``sms_opt_outs`` holds the phone numbers (digits and a leading ``+`` only, as
:func:`store.customer_answers.phone_key` writes them) that replied STOP to an organisation's
messages; the notify worker sends them nothing until they reply START. ``customer_instructions``
is one row per order (the latest instructions win); ``reschedules`` keeps every request for
another day; ``ratings`` is one row per order (a second rating is refused), with the driver who
delivered. Customer text is stored as text, length-limited by the API and by ``CHECK``s here.

Two indexes serve Twilio's callbacks on ``outbox``: a status callback names the provider's
message id, an incoming text names the phone number the messages went to.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE sms_opt_outs (
        org_id        bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        phone         text        NOT NULL CHECK (phone ~ '^[0-9+]{3,32}$'),
        opted_out_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, phone)
    );

    CREATE TABLE customer_instructions (
        order_id            bigint      PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
        org_id              bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        gate_code           text        CHECK (length(gate_code) <= 40),
        leave_at            text        CHECK (length(leave_at) <= 300),
        safe_place_allowed  boolean,
        note                text        CHECK (length(note) <= 500),
        source              text        NOT NULL CHECK (source IN ('page', 'sms')),
        updated_at          timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE reschedules (
        id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id      bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        order_id    bigint      NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
        from_day    date        NOT NULL,
        to_day      date        NOT NULL,
        route_id    bigint,
        source      text        NOT NULL CHECK (source IN ('page', 'sms')),
        created_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX reschedules_order ON reschedules (order_id, created_at);

    CREATE TABLE ratings (
        order_id    bigint      PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
        org_id      bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        driver_id   bigint,
        route_id    bigint,
        stars       smallint    NOT NULL CHECK (stars BETWEEN 1 AND 5),
        comment     text        CHECK (length(comment) <= 1000),
        created_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ratings_driver ON ratings (org_id, driver_id, created_at);

    CREATE INDEX outbox_provider ON outbox (provider_id) WHERE provider_id IS NOT NULL;
    CREATE INDEX outbox_sms_phone ON outbox ((regexp_replace(address, '[^0-9+]', '', 'g')),
        created_at) WHERE channel = 'sms';
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX outbox_sms_phone;
    DROP INDEX outbox_provider;
    DROP TABLE ratings;
    DROP TABLE reschedules;
    DROP TABLE customer_instructions;
    DROP TABLE sms_opt_outs;
    """)
