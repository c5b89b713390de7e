"""Each attempt to send an outbox row, as the sender records it.

One row per attempt: which outbox row, its attempt number (the row's ``attempts`` when it was
claimed), when it started and finished, the outcome (``sent``, ``retry``, ``failed``,
``dead``), the provider's status code and message id when there were ones, the latency, and
what went wrong. A sender killed mid-attempt records nothing for it; the next claim of the row
is the next attempt number.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE outbox_attempts (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        outbox_id    bigint      NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
        attempt      integer     NOT NULL,
        started_at   timestamptz NOT NULL,
        finished_at  timestamptz NOT NULL,
        outcome      text        NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed', 'dead')),
        status_code  integer,
        latency_ms   integer     NOT NULL,
        provider_id  text,
        error        text,
        CONSTRAINT outbox_attempts_once UNIQUE (outbox_id, attempt)
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE outbox_attempts;")
