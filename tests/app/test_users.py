"""Users who sign in to the pages: passwords, session cookies, CSRF, per-account limits, and the
users an administrator manages, against a live server with PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

import httpx
import msgspec
import psycopg
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from app.passwords import hash_password
from app.settings import Settings
from schemas.ids import OrgId, UserId
from schemas.users import UserRole
from store import users
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.helpers import eventually

PASSWORD = "correct horse battery"
ACCOUNT_LIMIT = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Three failed sign-ins per account; the per-address limit out of the way."""
    return msgspec.structs.replace(
        settings,
        auth_failure_limit="1000/minute",
        signin_failure_limit=f"{ACCOUNT_LIMIT} per 15 minutes",
    )


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def make_user(
    db: psycopg.AsyncConnection, org_id: OrgId, role: UserRole = "dispatcher"
) -> tuple[UserId, str]:
    """A user of ``org_id`` with :data:`PASSWORD`: their id and email."""
    email = f"user-{org_id}-{role}-{id(db) % 10_000}@example.com"
    created = await users.create(
        db, org_id, email=email, name="Dana", role=role, password_hash=await hash_password(PASSWORD)
    )
    return created.id, email


@contextlib.asynccontextmanager
async def browser(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, like one browser."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign ``client`` in; the session's CSRF token."""
    answer = await client.post("/v1/session", json={"email": email, "password": password})
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["csrf_token"]
    return token


async def test_a_user_signs_in_and_the_cookie_works_where_a_key_of_the_role_does(
    server: LiveServer, db: psycopg.AsyncConnection
) -> None:
    """The cookie is HttpOnly, SameSite=Strict, path /, not Secure over plain HTTP; the session
    reads like a dispatcher key; a change needs the CSRF token, a wrong one is refused too."""
    tenant = await make_tenant(db, drivers=0)
    user_id, email = await make_user(db, tenant.org_id)
    async with browser(server) as client:
        answer = await client.post(
            "/v1/session", json={"email": email.upper(), "password": PASSWORD}
        )
        assert answer.status_code == 201, answer.text
        morsels = [SimpleCookie(h) for h in answer.headers.get_list("set-cookie")]
        morsel = next(m for c in morsels for m in c.values() if m.value)
        assert morsel.key == "lastmile_session"
        assert morsel["httponly"]
        assert morsel["samesite"] == "strict"
        assert morsel["path"] == "/"
        assert not morsel["secure"]
        assert morsel.value.startswith("lms_")
        session = answer.json()
        assert session["user"]["id"] == user_id
        assert session["user"]["role"] == "dispatcher"
        assert session["org_id"] == tenant.org_id
        csrf = session["csrf_token"]

        assert (await client.get("/v1/session")).json()["csrf_token"] == csrf
        assert (await client.get("/v1/orders")).status_code == 200
        order = {"external_ref": "S-1", "address": "1 Main St", "lat": 52.5, "lon": 13.4,
                 "day": "2026-12-01"}  # fmt: skip
        bare = await client.post("/v1/orders", json=order)
        assert bare.status_code == 403
        assert "X-CSRF-Token" in bare.json()["reason"]
        forged = await client.post("/v1/orders", json=order, headers={"x-csrf-token": "x" * 43})
        assert forged.status_code == 403
        made = await client.post("/v1/orders", json=order, headers={"x-csrf-token": csrf})
        assert made.status_code == 201, made.text
        admins_only = await client.get("/v1/users")
        assert admins_only.status_code == 403
    async with browser(server) as stranger:
        assert (await stranger.get("/v1/orders")).status_code == 401
    stored = await users.password_hash(db, tenant.org_id, user_id)
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_wrong_passwords_unknown_addresses_and_deactivated_users_get_the_same_401(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    _, email = await make_user(db, tenant.org_id)
    gone_id, gone = await make_user(db, tenant.org_id, role="admin")
    await users.update(db, tenant.org_id, gone_id, name=None, role=None, active=False)
    answers = [
        await http.post("/v1/session", json={"email": email, "password": "not the password"}),
        await http.post("/v1/session", json={"email": "nobody@example.com", "password": PASSWORD}),
        await http.post("/v1/session", json={"email": gone, "password": PASSWORD}),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert len({a.json()["reason"] for a in answers}) == 1
    assert all("set-cookie" not in a.headers for a in answers)
    missing = await http.post("/v1/session", json={"email": email})
    assert missing.status_code == 400
    assert missing.json()["field"] == "password"


async def test_an_account_that_keeps_failing_is_refused_from_every_address(
    server: LiveServer, http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """Three wrong passwords for one account: then even the right one answers 429 with
    Retry-After for that account, while another account signs in."""
    _, email = await make_user(db, tenant.org_id)
    _, other = await make_user(db, tenant.org_id, role="admin")
    for n in range(ACCOUNT_LIMIT):
        wrong = await http.post("/v1/session", json={"email": email, "password": f"wrong {n}"})
        assert wrong.status_code == 401
    refused = await http.post("/v1/session", json={"email": email.title(), "password": PASSWORD})
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_failures"
    assert 1 <= int(refused.headers["retry-after"]) <= 15 * 60
    async with browser(server) as client:
        await sign_in(client, other)


async def test_signing_out_ends_the_session_and_clears_the_cookie(
    server: LiveServer, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    _, email = await make_user(db, tenant.org_id)
    async with browser(server) as client:
        csrf = await sign_in(client, email)
        token = client.cookies["lastmile_session"]
        assert (await client.delete("/v1/session")).status_code == 403  # no CSRF token
        out = await client.delete("/v1/session", headers={"x-csrf-token": csrf})
        assert out.status_code == 204
        assert "lastmile_session" not in client.cookies
    async with browser(server) as replayed:  # the old cookie, kept by someone
        replayed.cookies.set("lastmile_session", token)
        assert (await replayed.get("/v1/orders")).status_code == 401
        assert (await replayed.get("/v1/session")).status_code == 401


async def test_admins_manage_users_and_changes_reach_open_sessions_at_once(
    server: LiveServer, http: httpx.AsyncClient, db: psycopg.AsyncConnection
) -> None:
    """An admin creates a dispatcher (emails unique without case across organisations),
    promotes them (their open session may read users at once), deactivates them (their
    session is refused at once, their sign-in too), and cannot deactivate themselves."""
    admin = await make_tenant(db, drivers=0, role="admin")
    other = await make_tenant(db, drivers=0, role="admin")
    email = f"new-{admin.org_id}@example.com"
    body = {"email": email, "name": "New One", "role": "dispatcher", "password": PASSWORD}
    created = await http.post("/v1/users", json=body, headers=auth(admin.api_key))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert "password" not in created.text
    assert PASSWORD not in created.text
    taken = await http.post(
        "/v1/users", json=body | {"email": email.upper()}, headers=auth(other.api_key)
    )
    assert taken.status_code == 409
    assert taken.json()["field"] == "email"
    short = await http.post(
        "/v1/users", json=body | {"email": "x@example.com", "password": "short"},
        headers=auth(admin.api_key),
    )  # fmt: skip
    assert short.status_code == 400
    assert short.json()["field"] == "password"
    listed = await http.get("/v1/users", headers=auth(admin.api_key))
    assert [u["email"] for u in listed.json()["users"]] == [email]
    assert (await http.get(f"/v1/users/{user_id}", headers=auth(other.api_key))).status_code == 404
    patched = await http.patch(
        f"/v1/users/{user_id}", json={"active": False}, headers=auth(other.api_key)
    )
    assert patched.status_code == 404

    async with browser(server) as client:
        csrf = await sign_in(client, email)
        assert (await client.get("/v1/users")).status_code == 403
        promoted = await http.patch(
            f"/v1/users/{user_id}", json={"role": "admin"}, headers=auth(admin.api_key)
        )
        assert promoted.json()["role"] == "admin"

        async def reads_users() -> bool:
            return (await client.get("/v1/users")).status_code == 200

        await eventually(reads_users, "the new role in the open session")
        myself = await client.patch(
            f"/v1/users/{user_id}", json={"active": False}, headers={"x-csrf-token": csrf}
        )
        assert myself.status_code == 409
        assert myself.json()["field"] == "active"
        off = await http.patch(
            f"/v1/users/{user_id}", json={"active": False}, headers=auth(admin.api_key)
        )
        assert off.json()["deactivated_at"] is not None

        async def refused() -> bool:
            return (await client.get("/v1/orders")).status_code == 401

        await eventually(refused, "the deactivated user's session refused")
    again = await http.post("/v1/session", json={"email": email, "password": PASSWORD})
    assert again.status_code == 401
    back = await http.patch(
        f"/v1/users/{user_id}", json={"active": True}, headers=auth(admin.api_key)
    )
    assert back.json()["deactivated_at"] is None
    async with browser(server) as client:
        await sign_in(client, email)


async def test_a_new_password_ends_the_other_sessions(
    server: LiveServer, http: httpx.AsyncClient, db: psycopg.AsyncConnection
) -> None:
    """Changing one's own password needs the current one and keeps the session that changed
    it; an admin setting it ends every session of that user."""
    admin = await make_tenant(db, drivers=0, role="admin")
    user_id, email = await make_user(db, admin.org_id)
    new = "another good passphrase"
    async with browser(server) as laptop, browser(server) as phone:
        csrf = await sign_in(laptop, email)
        await sign_in(phone, email)
        wrong = await laptop.put(
            "/v1/session/password",
            json={"password": new, "current_password": "not it"},
            headers={"x-csrf-token": csrf},
        )
        assert wrong.status_code == 400
        assert wrong.json()["field"] == "current_password"
        changed = await laptop.put(
            "/v1/session/password",
            json={"password": new, "current_password": PASSWORD},
            headers={"x-csrf-token": csrf},
        )
        assert changed.status_code == 200, changed.text
        assert (await laptop.get("/v1/orders")).status_code == 200

        async def phone_out() -> bool:
            return (await phone.get("/v1/orders")).status_code == 401

        await eventually(phone_out, "the other session ended")
        assert (await http.put(
            "/v1/session/password", json={"password": new}, headers=auth(admin.api_key)
        )).status_code == 401  # fmt: skip
        set_by_admin = await http.put(
            f"/v1/users/{user_id}/password",
            json={"password": "set by the admin"},
            headers=auth(admin.api_key),
        )
        assert set_by_admin.status_code == 200

        async def laptop_out() -> bool:
            return (await laptop.get("/v1/orders")).status_code == 401

        await eventually(laptop_out, "every session ended")
    async with browser(server) as client:
        await sign_in(client, email, "set by the admin")


async def test_a_page_opens_its_socket_with_a_ticket_not_with_the_cookie(
    server: LiveServer, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """The cookie alone does not open the live socket; a ticket asked for with it does."""
    _, email = await make_user(db, tenant.org_id)
    async with browser(server) as client:
        csrf = await sign_in(client, email)
        cookie = f"lastmile_session={client.cookies['lastmile_session']}"
        async with websockets.connect(
            f"{server.ws_url}/v1/live/ws", additional_headers={"cookie": cookie}
        ) as socket:
            with pytest.raises(ConnectionClosed) as refused:
                await socket.recv()
        assert refused.value.rcvd is not None
        assert refused.value.rcvd.code == 4401
        ticket = await client.post("/v1/socket-tickets", headers={"x-csrf-token": csrf})
        assert ticket.status_code == 201, ticket.text
        async with websockets.connect(
            f"{server.ws_url}/v1/live/ws?ticket={ticket.json()['ticket']}"
        ) as socket:
            assert json.loads(await socket.recv())["type"] == "snapshot"


async def test_the_demo_keeps_its_credentials_across_restarts_while_they_work(
    server: LiveServer, http: httpx.AsyncClient, settings: Settings, db: psycopg.AsyncConnection
) -> None:
    """``serve --demo`` prints the same key, device tokens and dispatcher password on every
    start while they work; a password changed meanwhile gets a new one printed, which signs in."""
    from app.cli.serve import DEMO_EMAIL, _demo_banner

    def password_of(banner: str) -> str:
        line = next(line for line in banner.splitlines() if DEMO_EMAIL in line)
        return line.rsplit(" ", 1)[-1]

    first = await _demo_banner(settings)
    assert await _demo_banner(settings) == first
    async with browser(server) as client:
        await sign_in(client, DEMO_EMAIL, password_of(first))
    account = await users.account(db, DEMO_EMAIL)
    assert account is not None
    await users.set_password_hash(db, account.id, await hash_password("changed elsewhere 1"))
    again = await _demo_banner(settings)
    assert password_of(again) != password_of(first)
    assert again.splitlines()[1] == first.splitlines()[1]  # the same dispatcher key
    async with browser(server) as client:
        await sign_in(client, DEMO_EMAIL, password_of(again))


async def test_user_and_key_administration_is_written_to_the_audit_chain(
    server: LiveServer, http: httpx.AsyncClient, db: psycopg.AsyncConnection
) -> None:
    """Creating, changing and setting the password of a user, and creating, rotating and
    revoking an API key, each leave an entry naming who did it; the chain still verifies."""
    admin = await make_tenant(db, drivers=0, role="admin")
    headers = auth(admin.api_key)
    body = {"email": f"a-{admin.org_id}@example.com", "name": "A", "role": "dispatcher",
            "password": PASSWORD}  # fmt: skip
    user_id = (await http.post("/v1/users", json=body, headers=headers)).json()["id"]
    await http.patch(f"/v1/users/{user_id}", json={"role": "admin"}, headers=headers)
    await http.put(f"/v1/users/{user_id}/password", json={"password": "x" * 12}, headers=headers)
    key_id = (
        await http.post("/v1/api-keys", json={"name": "k", "role": "integration"}, headers=headers)
    ).json()["id"]
    successor = (await http.post(f"/v1/api-keys/{key_id}/rotate", headers=headers)).json()["id"]
    await http.post(f"/v1/api-keys/{successor}/revoke", headers=headers)
    rows = await (
        await db.execute(
            "SELECT kind, subject, record FROM audit_log WHERE org_id = %s ORDER BY seq",
            (admin.org_id,),
        )
    ).fetchall()
    assert [(kind, subject) for kind, subject, _ in rows] == [
        ("user.created", f"user:{user_id}"),
        ("user.changed", f"user:{user_id}"),
        ("user.password_set", f"user:{user_id}"),
        ("api_key.created", f"api_key:{key_id}"),
        ("api_key.rotated", f"api_key:{key_id}"),
        ("api_key.revoked", f"api_key:{successor}"),
    ]
    assert all('"by"' in record for _, _, record in rows)
    assert PASSWORD not in " ".join(record for _, _, record in rows)
    check = (await http.get("/v1/audit/verify", headers=headers)).json()
    assert check["ok"] is True
    assert check["entries"] == len(rows)
