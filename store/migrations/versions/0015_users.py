"""People who sign in to the pages: users with a password, and their sessions (issue #16).

A user belongs to one organisation and holds the role ``admin`` or ``dispatcher`` (integrations
use API keys). Email addresses are unique across organisations, compared without case: signing
in names no organisation. Only an Argon2 hash of a password is stored, and only the SHA-256 of
a session's token.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE users (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id          bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        email           text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
        name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        role            text        NOT NULL CHECK (role IN ('admin', 'dispatcher')),
        password_hash   text        NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        deactivated_at  timestamptz,
        last_sign_in_at timestamptz
    );
    CREATE UNIQUE INDEX users_email ON users (lower(email));
    CREATE INDEX users_org ON users (org_id);

    CREATE TABLE user_sessions (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id      bigint      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
        user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        token_hash  bytea       NOT NULL UNIQUE,
        created_at  timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz NOT NULL,
        revoked_at  timestamptz
    );
    CREATE INDEX user_sessions_user ON user_sessions (user_id) WHERE revoked_at IS NULL;
    """)


def downgrade() -> None:
    op.execute("DROP TABLE user_sessions; DROP TABLE users")
