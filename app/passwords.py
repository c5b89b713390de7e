"""Users' passwords: hashed with Argon2id (``argon2-cffi``), checked off the event loop.

A hash takes about a tenth of a second of one core on purpose, so hashing and checking run in
a thread: the process goes on answering while someone signs in. A sign-in to an unknown address
checks against a fixed hash all the same, so that the time taken does not tell which addresses
have accounts.
"""

from __future__ import annotations

import asyncio
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER: Final = PasswordHasher()
_NOBODY: Final = _HASHER.hash("no account has this password")
"""What an unknown address's password is checked against."""


async def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (salted; in PHC string format)."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify(hashed: str | None, password: str) -> bool:
    """Whether ``password`` matches ``hashed`` (None: no such account, always False, in the
    same time)."""

    def check() -> bool:
        try:
            return _HASHER.verify(hashed or _NOBODY, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def outdated(hashed: str) -> bool:
    """Whether ``hashed`` was made with other parameters than today's (re-hash on sign-in)."""
    return _HASHER.check_needs_rehash(hashed)
