"""The weekly summary by email (issue #15): its recipients, and one row per organisation and week
it went out.

``orgs.summary_emails``: where an organisation's weekly summary goes (empty: nowhere, the
summary is off). ``weekly_summaries``: one row per organisation and week (its Monday, in the
organisation's time zone) whose scheduled summary was queued, written in the transaction that
puts the emails in the outbox; its primary key is what makes the schedule send once per week
however many processes run it, and whatever restarts.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE orgs ADD COLUMN summary_emails text[] NOT NULL DEFAULT '{}';

    CREATE TABLE weekly_summaries (
        org_id      bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        week_start  date        NOT NULL,
        recipients  integer     NOT NULL,
        queued_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, week_start)
    );
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE weekly_summaries;
    ALTER TABLE orgs DROP COLUMN summary_emails;
    """)
