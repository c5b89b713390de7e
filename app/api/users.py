"""People who sign in to the pages: signing in and out, and the users an administrator manages.

``POST /v1/session`` checks an email and password and answers with an HttpOnly session cookie
(``Secure`` and ``__Host-`` over TLS, ``SameSite=Strict``) and the session's CSRF token, which
a page sends back in ``X-CSRF-Token`` with every change (see :mod:`app.auth`). Failed sign-ins
count against the caller's address and against the account, each with its own limit. Ending a
session, deactivating a user and setting a password reach every process through Redis at once,
like revoking a key (:mod:`app.revocation`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import msgspec
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app import passwords, revocation
from app.api.credentials import announce_revoked
from app.auth import (
    ADMINS,
    FLEET_WRITERS,
    SECURE_SESSION_COOKIE,
    SESSION_COOKIE,
    SESSION_PREFIX,
    actor_of,
    csrf_token,
    hash_token,
    new_token,
    session_cookie,
)
from app.errors import Conflict, InvalidField, NotFound, Unauthorized
from app.http import answer, decode, encode, path_id, request_body, resources_of
from app.idempotency import Answer, run_create
from app.resources import Resources
from schemas.auth import ApiPrincipal
from schemas.ids import OrgId, UserId
from schemas.users import PasswordIn, Session, SignIn, User, UserIn, UserPatch, Users
from store import audit, users

WRONG: str = "wrong email or password"


async def session(request: Request) -> Response:
    """``POST`` (sign in), ``GET`` (who is signed in) and ``DELETE`` (sign out) ``/v1/session``."""
    if request.method == "POST":
        return await _sign_in(request)
    resources = resources_of(request)
    signed_in = await _signed_in(request)
    if request.method == "GET":
        return answer(
            await _session(
                resources,
                signed_in.principal.org_id,
                signed_in.user_id,
                signed_in.expires_at,
                signed_in.token,
            )
        )
    async with resources.pool.connection() as conn:
        await users.end_session(conn, hash_token(signed_in.token))
    await announce_revoked(resources, "session", [hash_token(signed_in.token)])
    response = Response(status_code=204)
    _clear_cookies(response)
    return response


async def _sign_in(request: Request) -> Response:
    resources = resources_of(request)
    auth = resources.auth
    auth.check(request)
    wanted = decode(await request_body(request), request.headers.get("content-type"), SignIn)
    account_name = wanted.email.strip().lower()
    throttle = auth.throttle
    if throttle is not None:
        await throttle.check_account(account_name)
    async with resources.pool.connection() as conn:
        account = await users.account(conn, account_name)
    matches = await passwords.verify(
        None if account is None else account.password_hash, wanted.password
    )
    if account is None or not matches or not account.active:
        if throttle is not None:
            await throttle.failed_account(account_name)
        await auth.failed(request)
        raise Unauthorized(WRONG, challenge="Session")
    token = new_token(SESSION_PREFIX)
    expires_at = datetime.now(UTC) + timedelta(seconds=resources.settings.session_ttl_s)
    rehashed = (
        await passwords.hash_password(wanted.password)
        if passwords.outdated(account.password_hash)
        else None
    )
    async with resources.pool.connection() as conn, conn.transaction():
        await users.start_session(conn, account, hash_token(token), expires_at)
        if rehashed is not None:
            await users.set_password_hash(conn, account.id, rehashed)
    shown = await _session(resources, account.org_id, account.id, expires_at, token)
    response = answer(shown, status=201)
    secure = request.url.scheme in ("https", "wss")
    _clear_cookies(response)
    response.set_cookie(
        SECURE_SESSION_COOKIE if secure else SESSION_COOKIE,
        token,
        max_age=resources.settings.session_ttl_s,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return response


def _clear_cookies(response: Response) -> None:
    for name in (SESSION_COOKIE, SECURE_SESSION_COOKIE):
        response.delete_cookie(
            name, path="/", secure=name == SECURE_SESSION_COOKIE, httponly=True, samesite="strict"
        )


async def _session(
    resources: Resources, org_id: OrgId, user_id: UserId, expires_at: datetime, token: str
) -> Session:
    async with resources.pool.connection() as conn:
        user = await users.get(conn, org_id, user_id)
    if user is None:  # removed with its organisation since
        raise Unauthorized("unknown, revoked or expired session", challenge="Session")
    return Session(user=user, org_id=org_id, expires_at=expires_at, csrf_token=csrf_token(token))


class SignedIn(NamedTuple):
    """A request made with a user's session cookie."""

    principal: ApiPrincipal
    user_id: UserId
    expires_at: datetime
    token: str


async def _signed_in(request: Request) -> SignedIn:
    """The session's user (any role): these routes are for people, not for API keys."""
    principal = await resources_of(request).auth.require_api_key(request, FLEET_WRITERS)
    token = session_cookie(request)
    if principal.user_id is None or principal.expires_at is None or token is None:
        raise Unauthorized(
            "this is for a signed-in user's session, not an API key", challenge="Session"
        )
    return SignedIn(principal, principal.user_id, principal.expires_at, token)


async def own_password(request: Request) -> Response:
    """``PUT /v1/session/password``: the signed-in user changes their password (giving the
    current one); their other sessions end."""
    resources = resources_of(request)
    signed_in = await _signed_in(request)
    principal = signed_in.principal
    wanted = decode(await request_body(request), request.headers.get("content-type"), PasswordIn)
    async with resources.pool.connection() as conn:
        stored = await users.password_hash(conn, principal.org_id, signed_in.user_id)
    if wanted.current_password is None:
        raise InvalidField("current_password", "expected your current password, got none")
    if not await passwords.verify(stored, wanted.current_password):
        await resources.auth.failed(request)
        raise InvalidField("current_password", "does not match your current password")
    return await _set_password(request, principal, signed_in.user_id, wanted.password)


async def user_password(request: Request) -> Response:
    """``PUT /v1/users/{user_id}/password``: an administrator sets a user's password; every
    session of that user ends (but the caller's own)."""
    principal = await resources_of(request).auth.require_api_key(request, ADMINS)
    user_id = UserId(path_id(request, "user_id"))
    wanted = decode(await request_body(request), request.headers.get("content-type"), PasswordIn)
    if wanted.current_password is not None:
        raise InvalidField("current_password", "expected none: an administrator sets it")
    return await _set_password(request, principal, user_id, wanted.password)


async def _set_password(
    request: Request, principal: ApiPrincipal, user_id: UserId, password: str
) -> Response:
    resources = resources_of(request)
    hashed = await passwords.hash_password(password)
    own = session_cookie(request) if principal.user_id == user_id else None
    async with resources.pool.connection() as conn, conn.transaction():
        found = await users.get(conn, principal.org_id, user_id)
        if found is None:
            raise NotFound(f"no user {user_id} in this organisation")
        await users.set_password_hash(conn, user_id, hashed)
        ended = await users.end_sessions(
            conn, user_id, keep=None if own is None else hash_token(own)
        )
        await audit.append(
            conn,
            principal.org_id,
            "user.password_set",
            f"user:{user_id}",
            {"sessions_ended": len(ended), "by": actor_of(principal)},
        )
    await announce_revoked(resources, "session", ended)
    return answer(found)


async def user_list(request: Request) -> Response:
    """``GET`` (list) and ``POST`` (create) ``/v1/users``: admins only."""
    principal = await resources_of(request).auth.require_api_key(request, ADMINS)
    if request.method == "GET":
        async with resources_of(request).pool.connection() as conn:
            found = await users.list_users(conn, principal.org_id)
        return answer(Users(users=found))
    body = await request_body(request)
    wanted = decode(body, request.headers.get("content-type"), UserIn)
    hashed = await passwords.hash_password(wanted.password)

    async def command(conn: AsyncConnection) -> Answer:
        try:
            async with conn.transaction():
                created = await users.create(
                    conn,
                    principal.org_id,
                    email=wanted.email.strip(),
                    name=wanted.name,
                    role=wanted.role,
                    password_hash=hashed,
                )
        except users.EmailTaken:
            raise Conflict("email", f"{wanted.email!r} already has an account") from None
        await audit.append(
            conn,
            principal.org_id,
            "user.created",
            f"user:{created.id}",
            {"email": created.email, "role": created.role, "by": actor_of(principal)},
        )
        return Answer(201, encode(created))

    return await run_create(request, principal, body, command)


async def user(request: Request) -> Response:
    """``GET`` and ``PATCH /v1/users/{user_id}``: admins only. Deactivating a user or changing
    their role applies to their open sessions at once."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, ADMINS)
    user_id = UserId(path_id(request, "user_id"))
    if request.method == "GET":
        async with resources.pool.connection() as conn:
            found = await users.get(conn, principal.org_id, user_id)
        if found is None:
            raise NotFound(f"no user {user_id} in this organisation")
        return answer(found)
    wanted = decode(await request_body(request), request.headers.get("content-type"), UserPatch)
    if principal.user_id == user_id and (
        wanted.active is False or wanted.role not in (None, "admin")
    ):
        field = "active" if wanted.active is False else "role"
        raise Conflict(field, "you cannot deactivate or demote yourself; another admin can")
    return answer(await _change(resources, principal, user_id, wanted))


async def _change(
    resources: Resources, principal: ApiPrincipal, user_id: UserId, wanted: UserPatch
) -> User:
    ended: list[bytes] = []
    org_id = principal.org_id
    async with resources.pool.connection() as conn, conn.transaction():
        found = await users.update(
            conn, org_id, user_id, name=wanted.name, role=wanted.role, active=wanted.active
        )
        if found is None:
            raise NotFound(f"no user {user_id} in this organisation")
        if wanted.active is False:
            ended = await users.end_sessions(conn, user_id)
        changed = {k: v for k, v in msgspec.structs.asdict(wanted).items() if v is not None}
        await audit.append(
            conn, org_id, "user.changed", f"user:{user_id}", {**changed, "by": actor_of(principal)}
        )
        open_sessions = await users.session_hashes(conn, user_id)
    if ended:
        await announce_revoked(resources, "session", ended)
    if wanted.role is not None and open_sessions:  # the new role, at once
        await revocation.evict(resources.redis, resources.settings.redis_prefix, open_sessions)
    return found
