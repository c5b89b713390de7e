"""``Idempotency-Key`` on every create: a retried request replays its first answer.

The contract a client can rely on:

* The key is any 1 to 255 visible ASCII characters, unique per organisation for 24 hours.
* The first request with a key runs; if it succeeds (2xx) its status and body are recorded
  in the same transaction that created the object. A failed request (4xx) records nothing
  and may be retried with the same key.
* A request with a key already used for the **same** request (method, path and body bytes)
  creates nothing and gets the recorded status and body, with ``Idempotent-Replayed: true``.
* The same key with a **different** request is refused: 422 ``idempotency_key_reused``.
* Two identical requests at once create once: the second waits for the first's commit
  (see :mod:`store.idempotency`) and then replays its answer.

A request is validated before its key is looked at, so an invalid body is a 400 whatever key
it carries.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Final, NamedTuple

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.errors import InvalidField, KeyReused
from app.http import JSON, resources_of
from schemas.auth import ApiPrincipal
from store import idempotency

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
_KEY: Final = re.compile(r"^[\x21-\x7e]{1,255}$")


class Answer(NamedTuple):
    """What a command answers; ``replay`` is what a replay answers instead, when set.

    ``replay`` exists for answers that carry a secret shown once (a device token): the
    secret is never recorded, so the replay says ``null`` where the first answer had it.
    """

    status: int
    body: bytes
    replay: bytes | None = None


Command = Callable[[AsyncConnection], Awaitable[Answer]]


def fingerprint(request: Request, body: bytes) -> bytes:
    """SHA-256 over the method, the path and the body: what "the same request" means."""
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


async def run_create(
    request: Request, principal: ApiPrincipal, body: bytes, command: Command
) -> Response:
    """Run ``command`` in one transaction, once per ``Idempotency-Key`` when there is one."""
    key = request.headers.get(HEADER)
    pool = resources_of(request).pool
    if key is None:
        async with pool.connection() as conn, conn.transaction():
            result = await command(conn)
        return _respond(result.status, result.body)
    if not _KEY.match(key):
        raise InvalidField(HEADER, f"expected 1 to 255 visible ASCII characters, got {key!r}")
    request_hash = fingerprint(request, body)
    org_id = principal.org_id
    async with pool.connection() as conn, conn.transaction():
        prior = await idempotency.claim(conn, org_id, key, request_hash)
        if prior is not None:
            if prior.request_hash != request_hash:
                raise KeyReused(
                    HEADER,
                    f"expected a new key for a different request; {key!r} was used within"
                    " 24 hours for another method, path or body",
                )
            response = _respond(prior.status, prior.response)
            response.headers[REPLAYED_HEADER] = "true"
            return response
        result = await command(conn)
        if 200 <= result.status < 300:
            recorded = result.body if result.replay is None else result.replay
            await idempotency.record(conn, org_id, key, result.status, recorded)
        else:
            await idempotency.release(conn, org_id, key)
    return _respond(result.status, result.body)


def _respond(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type=JSON)
