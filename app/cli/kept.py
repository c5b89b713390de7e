"""Demo credentials kept in the data folder across restarts, readable by their owner only.

``serve --demo`` and ``serve --simulate`` print keys, tokens and a password; a restart prints
the same ones while they still work (each is checked against the database before it is
printed again), instead of new ones each time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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
