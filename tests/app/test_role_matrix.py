"""Every operation of the reference × every credential: the roles the catalogue declares are
the roles the server lets through, and another organisation's objects are not found.

The credentials: an organisation's admin, dispatcher and integration keys, the session cookies
of its signed-in admin and dispatcher users (with their CSRF tokens), one of its drivers'
device tokens, no credential at all, and another organisation's admin key. Operations for a
signed-in user alone take every user's session and refuse keys. A role the
operation does not name is refused with 403 before anything else is looked at; a device token
on a key's route, or no credential, with 401; an allowed role gets past authorisation (any
other answer, never a 5xx). Paths name this organisation's driver, order, device and key
where the operation has those ids, so that the other organisation's admin, whose role is
allowed, must get 404 for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import psycopg
import pytest

from app.api.catalogue import OPERATIONS
from app.auth import issue_api_key, issue_device_token
from app.openapi import Operation
from app.passwords import hash_password
from app.settings import Settings
from schemas.auth import Role
from schemas.users import UserRole
from store import tenants, users
from tests.conftest import LiveServer, Tenant, make_tenant

ROLES: tuple[Role, ...] = ("admin", "dispatcher", "integration")
PEOPLE: tuple[UserRole, ...] = ("admin", "dispatcher")
PASSWORD = "matrix password"
UNKNOWN_ID = 987_654_321
_PARAM = re.compile(r"\{(\w+)\}")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Hundreds of device tokens on keys' routes come from one address on purpose."""
    return msgspec.structs.replace(settings, auth_failure_limit="1000000/minute")


@dataclass(frozen=True)
class Org:
    """One organisation's credentials, and ids of some of its objects."""

    keys: dict[Role, str]
    emails: dict[UserRole, str]
    device: str
    ids: dict[str, int]


async def _org(db: psycopg.AsyncConnection, http: httpx.AsyncClient) -> Org:
    base: Tenant = await make_tenant(db, drivers=1, role="admin")
    keys: dict[Role, str] = {"admin": base.api_key}
    for role in ("dispatcher", "integration"):
        keys[role] = await issue_api_key(db, base.org_id, role=role, name=role)
    driver = base.drivers[0]
    order = await http.post(
        "/v1/orders",
        json={"external_ref": "M-1", "address": "1 Main St", "lat": 52.5, "lon": 13.4,
              "day": "2026-12-01"},
        headers={"authorization": f"Bearer {base.api_key}"},
    )  # fmt: skip
    assert order.status_code == 201, order.text
    # Spares for the paths: revoking them (as the allowed roles will) spares the credentials
    # the test calls with.
    spare = await issue_device_token(db, base.org_id, driver.id, name="spare")
    assert spare is not None
    await issue_api_key(db, base.org_id, role="integration", name="spare")
    spare_key = (await tenants.list_api_keys(db, base.org_id))[-1]
    hashed = await hash_password(PASSWORD)
    emails: dict[UserRole, str] = {}
    for person in (*PEOPLE, "spare"):
        email = f"{person}-{base.org_id}@matrix.example"
        made = await users.create(
            db, base.org_id, email=email, name=person, role="dispatcher", password_hash=hashed
        )
        if person in PEOPLE:
            await users.update(db, base.org_id, made.id, name=None, role=person, active=None)
            emails[person] = email  # one of PEOPLE
    ids = {
        "driver_id": driver.id,
        "order_id": order.json()["id"],
        "device_id": spare[0],
        "key_id": spare_key.id,
        "user_id": made.id,
    }
    return Org(keys=keys, emails=emails, device=driver.token, ids=ids)


@dataclass(frozen=True)
class Session:
    """A signed-in user: a client holding the cookie, and the CSRF token."""

    client: httpx.AsyncClient
    csrf: str


async def _signed_in(server: LiveServer, email: str) -> Session:
    client = httpx.AsyncClient(base_url=server.url, timeout=10)
    answer = await client.post("/v1/session", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return Session(client, answer.json()["csrf_token"])


def _url(op: Operation, ids: dict[str, int]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1]
        if name == "sha256":
            return "0" * 64
        fixed = {"kind": "en_route", "channel": "sms", "language": "en"}
        return fixed.get(name) or str(ids.get(name, UNKNOWN_ID))

    return _PARAM.sub(value, op.path)


async def _call(
    http: httpx.AsyncClient, op: Operation, url: str, token: str | Session | None
) -> httpx.Response:
    headers = (
        {} if token is None or isinstance(token, Session) else {"authorization": f"Bearer {token}"}
    )
    if isinstance(token, Session):
        http, headers = token.client, {"x-csrf-token": token.csrf}
    body: dict[str, Any] = {}
    if op.method.upper() in ("POST", "PUT", "PATCH"):
        body = {"content": b"{}", "headers": headers | {"content-type": "application/json"}}
        return await http.request(op.method.upper(), url, **body)
    return await http.request(op.method.upper(), url, headers=headers)


async def test_every_operation_lets_in_exactly_the_declared_roles(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, server: LiveServer
) -> None:
    """Checked for every operation of a key, a session or a device; every mismatch is listed
    at once."""
    mine = await _org(db, http)
    theirs = await _org(db, http)
    people = {person: await _signed_in(server, mine.emails[person]) for person in PEOPLE}
    try:
        wrong = await _check_every_operation(http, server, mine, theirs, people)
    finally:
        for session in people.values():
            await session.client.aclose()
    assert wrong == []


async def _check_every_operation(
    http: httpx.AsyncClient,
    server: LiveServer,
    mine: Org,
    theirs: Org,
    people: dict[UserRole, Session],
) -> list[str]:
    wrong: list[str] = []

    def expect(op: Operation, who: str, answer: httpx.Response, ok: bool) -> None:
        if not ok:
            wrong.append(
                f"{op.method} {op.path} as {who}: {answer.status_code} {answer.text[:120]}"
            )

    for op in OPERATIONS:
        if op.credential not in ("api_key", "device", "session"):
            continue
        url = _url(op, mine.ids)
        anonymous = await _call(http, op, url, None)
        expect(op, "no credential", anonymous, anonymous.status_code == 401)
        if op.credential == "session":  # each with a fresh session: it may end it
            as_key = await _call(http, op, url, mine.keys["admin"])
            expect(op, "admin key", as_key, as_key.status_code == 401)
            for person in PEOPLE:
                fresh = await _signed_in(server, mine.emails[person])
                try:
                    answer = await _call(http, op, url, fresh)
                finally:
                    await fresh.client.aclose()
                expect(op, f"{person} session", answer, answer.status_code < 500
                       and answer.status_code not in (401, 403))  # fmt: skip
            continue
        if op.credential == "device":
            as_device = await _call(http, op, url, mine.device)
            expect(op, "device", as_device, as_device.status_code not in (401, 403, 429, 500))
            as_admin = await _call(http, op, url, mine.keys["admin"])
            expect(op, "admin key", as_admin, as_admin.status_code == 401)
            continue
        as_device = await _call(http, op, url, mine.device)
        expect(op, "device", as_device, as_device.status_code == 401)
        for role in ROLES:
            answer = await _call(http, op, url, mine.keys[role])
            if role in op.roles:
                expect(
                    op,
                    role,
                    answer,
                    answer.status_code < 500 and answer.status_code not in (401, 403),
                )
            else:
                expect(op, role, answer, answer.status_code == 403)
        for person in PEOPLE:
            answer = await _call(http, op, url, people[person])
            allowed = answer.status_code < 500 and answer.status_code not in (401, 403)
            refused = answer.status_code == 403
            expect(op, f"{person} session", answer, allowed if person in op.roles else refused)
        if "admin" in op.roles and set(_PARAM.findall(op.path)) & set(mine.ids):
            stranger = await _call(http, op, url, theirs.keys["admin"])
            expect(op, "another organisation's admin", stranger, _not_found(op, stranger))
    return wrong


def _not_found(op: Operation, answer: httpx.Response) -> bool:
    """404; or a 400 naming a field of the (incomplete) body, which a handler may check before
    it looks the object up: neither says whether the other organisation's object exists."""
    if answer.status_code == 404:
        return True
    field = answer.json().get("field") if answer.status_code == 400 else None
    return field is not None and field not in _PARAM.findall(op.path)
