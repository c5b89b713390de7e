"""Demo credentials kept in the data folder across restarts, readable by their owner only.

``serve --demo`` and ``serve --simulate`` print keys, tokens and a password; a restart prints
the same ones while they still work (each is checked against the database before it is
printed again), instead of new ones each time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from schemas.ids import OrgId


def load(path: Path) -> dict[str, Any]:
    """What was kept at ``path`` (empty when nothing readable is there)."""
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) else {}


def save(path: Path, values: dict[str, Any]) -> None:
    """Keep ``values`` at ``path``, readable and writable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(values))
    path.chmod(0o600)  # a file kept from before may have been wider


async def dispatcher_password(
    conn: AsyncConnection, org_id: OrgId, email: str, name: str, kept_password: object
) -> str:
    """The password of the demo dispatcher ``email`` of ``org_id``: the one kept from an earlier
    start while it still signs in, else a new one (the user is made once)."""
    import secrets

    from app.passwords import hash_password, verify
    from store import users

    found = await users.account(conn, email)
    if (
        found is not None
        and found.active
        and isinstance(kept_password, str)
        and await verify(found.password_hash, kept_password)
    ):
        return kept_password
    password = secrets.token_urlsafe(9)
    hashed = await hash_password(password)
    if found is None:
        await users.create(
            conn, org_id, email=email, name=name, role="dispatcher", password_hash=hashed
        )
    else:
        await users.set_password_hash(conn, found.id, hashed)
    return password
