"""Notification rules, templates and previews through the live API, per organisation."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import psycopg
import pytest

from app.auth import issue_api_key
from schemas.delivery import OrderIn
from store.orders import create_order
from tests.conftest import Tenant, make_tenant

RULES = "/v1/notification-rules"
TEMPLATES = "/v1/notification-templates"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(db: psycopg.AsyncConnection, tenant: Tenant) -> dict[str, str]:
    """An admin key of the tenant's organisation."""
    return bearer(await issue_api_key(db, tenant.org_id, role="admin", name="admin"))


async def refused(response: httpx.Response, status: int, field: str) -> str:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["field"] == field, body
    return str(body["reason"])


async def test_rules_default_without_setup_and_an_admin_sets_them(
    http: httpx.AsyncClient, tenant: Tenant, admin: dict[str, str]
) -> None:
    """An organisation that set nothing reads the defaults; an admin's PUT stores the rules,
    fields left out taking the defaults; a dispatcher may read but not write."""
    first = await http.get(RULES, headers=bearer(tenant.api_key))
    assert first.status_code == 200
    assert first.json()["customer_events"] == [
        "en_route",
        "approaching",
        "delivered",
        "failed",
        "running_late",
        "eta_changed",
    ]
    assert first.json()["dispatcher_emails"] == []
    assert first.json()["eta_change_min"] == 15.0

    wanted = {
        "dispatcher_emails": ["ops@example.com"],
        "language": "de",
        "quiet_hours": "22:00-07:00",
    }
    put = await http.put(RULES, json=wanted, headers=admin)
    assert put.status_code == 200, put.text
    assert put.json() == first.json() | wanted
    assert (await http.get(RULES, headers=bearer(tenant.api_key))).json() == put.json()

    forbidden = await http.put(RULES, json=wanted, headers=bearer(tenant.api_key))
    assert forbidden.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"language": "xx"}, "language"),
        ({"quiet_hours": "25:00-07:00"}, "quiet_hours"),
        ({"quiet_hours": "tonight"}, "quiet_hours"),
        ({"eta_change_min": -5}, "eta_change_min"),
        ({"max_event_age_min": 0}, "max_event_age_min"),
        ({"dispatcher_emails": ["not an address"]}, "dispatcher_emails[0]"),
        ({"dispatcher_emails": ["a@example.com", "a@example.com"]}, "dispatcher_emails[1]"),
        ({"customer_events": ["teleported"]}, "customer_events[0]"),
        ({"customer_channels": []}, "customer_channels"),
        ({"dispatcher_events": ["en_route"]}, "dispatcher_events[0]"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_rules_are_422_naming_the_field(
    http: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any], field: str
) -> None:
    """Rules the worker could not follow are refused with 422 naming the field."""
    await refused(await http.put(RULES, json=body, headers=admin), 422, field)


async def test_rules_are_the_organisations_own(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, admin: dict[str, str]
) -> None:
    """Another organisation's rules stay its own: a PUT here changes nothing there."""
    other = await make_tenant(db, drivers=0)
    await http.put(RULES, json={"dispatcher_emails": ["ops@example.com"]}, headers=admin)
    theirs = await http.get(RULES, headers=bearer(other.api_key))
    assert theirs.json()["dispatcher_emails"] == []


async def test_templates_list_defaults_and_an_admin_overrides_and_deletes_one(
    http: httpx.AsyncClient, tenant: Tenant, admin: dict[str, str]
) -> None:
    """The list holds a built-in template of every kind and channel in en and de; a valid PUT
    stores the organisation's own, GET shows it, DELETE falls back to the default."""
    listed = (await http.get(TEMPLATES, headers=bearer(tenant.api_key))).json()["templates"]
    keys = {(t["kind"], t["channel"], t["language"]) for t in listed}
    assert ("en_route", "sms", "de") in keys
    assert ("alert_failed", "email", "en") in keys
    assert ("alert_failed", "sms", "en") not in keys
    assert not any(t["custom"] for t in listed)

    path = f"{TEMPLATES}/en_route/sms/en"
    body = {
        "text": "{{ org.name }}: on its way.{% if tracking_url %} {{ tracking_url }}{% endif %}"
    }
    put = await http.put(path, json=body, headers=admin)
    assert put.status_code == 200, put.text
    assert put.json()["custom"] is True
    shown = (await http.get(path, headers=bearer(tenant.api_key))).json()
    assert (shown["text"], shown["custom"]) == (body["text"], True)
    listed = (await http.get(TEMPLATES, headers=bearer(tenant.api_key))).json()["templates"]
    assert [t["custom"] for t in listed if t["kind"] == "en_route" and t["channel"] == "sms"
            and t["language"] == "en"] == [True]  # fmt: skip

    dropped = await http.delete(path, headers=admin)
    assert dropped.status_code == 200
    assert dropped.json()["custom"] is False
    assert (await http.get(path, headers=bearer(tenant.api_key))).json()["custom"] is False
    assert (await http.delete(path, headers=bearer(tenant.api_key))).status_code == 403


@pytest.mark.parametrize(
    ("path", "body", "field", "reason"),
    [
        ("en_route/sms/en", {"text": "{% if %}"}, "text", "TemplateSyntaxError"),
        ("en_route/sms/en", {"text": "{{ customer.phone }}"}, "text", "'customer' is undefined"),
        ("en_route/sms/en", {"text": "{{ ''.__class__ }}"}, "text", "unsafe"),
        ("en_route/sms/en", {"text": "{{ 'x' * 1599 }}{{ order.ref }}"}, "text", "at most 1600"),
        ("en_route/sms/en", {"text": "x", "subject": "s"}, "subject", "an SMS has only text"),
        ("en_route/email/en", {"text": "x"}, "subject", "needs a subject"),
        (
            "en_route/email/de",
            {"text": "x", "subject": "s", "html": "<p>{{ window.latest|time }}</p>"},
            "html",
            "'None' has no attribute 'latest'",
        ),
        ("alert_failed/sms/en", {"text": "x"}, "channel", "email only"),
        ("en_route/sms/en", {"text": ""}, "text", "at least 1 character"),
        ("en_route/sms/en", {"txt": "x"}, "txt", "unknown"),
    ],
)
async def test_a_template_that_does_not_render_is_refused_when_saved(
    http: httpx.AsyncClient,
    admin: dict[str, str],
    path: str,
    body: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    """A template is rendered against sample orders at save time: a syntax error, an unknown
    variable, a sandbox violation, too long an output or parts its channel lacks are a 422
    naming the part and the reason, and nothing is stored."""
    response = await http.put(f"{TEMPLATES}/{path}", json=body, headers=admin)
    assert reason in await refused(response, 422, field)
    stored = (await http.get(f"{TEMPLATES}/{path}", headers=admin)).json()
    assert stored.get("custom", False) is False


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("teleported/sms/en", "kind"),
        ("en_route/fax/en", "channel"),
        ("en_route/sms/xx", "language"),
    ],
)
async def test_a_bad_template_path_names_the_parameter(
    http: httpx.AsyncClient, tenant: Tenant, path: str, field: str
) -> None:
    """An unknown kind, channel or language in the path is a 400 naming it."""
    await refused(await http.get(f"{TEMPLATES}/{path}", headers=bearer(tenant.api_key)), 400, field)


async def test_a_preview_renders_a_real_order_and_never_another_organisations(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant, admin: dict[str, str]
) -> None:
    """The preview renders the stored (or a given) template for one of the organisation's
    orders, escaped, in the asked language; another organisation's order is a 404."""
    order = OrderIn(
        external_ref="P-1",
        address="<i>3 Hill Rd</i>",
        lat=52.5,
        lon=13.4,
        day=date.today(),
        customer_name="Sam",
    )
    order_id = (await create_order(db, tenant.org_id, order)).id
    preview = f"{TEMPLATES}/preview"
    body = {"order_id": order_id, "kind": "en_route", "channel": "email", "language": "de"}
    shown = await http.post(preview, json=body, headers=bearer(tenant.api_key))
    assert shown.status_code == 200, shown.text
    mail = shown.json()
    assert mail["subject"].startswith("Ihre Lieferung von ")
    assert "P-1" in mail["text"]
    assert "/t/preview-link-token" in mail["html"]

    given = body | {"template": {"subject": "Hi {{ order.customer_name }}", "text": "x",
                                 "html": "<p>{{ order.address }}</p>"}}  # fmt: skip
    custom = (await http.post(preview, json=given, headers=bearer(tenant.api_key))).json()
    assert custom["subject"] == "Hi Sam"
    assert custom["html"] == "<p>&lt;i&gt;3 Hill Rd&lt;/i&gt;</p>"

    broken = body | {"template": {"subject": "s", "text": "{{ nope }}"}}
    response = await http.post(preview, json=broken, headers=bearer(tenant.api_key))
    assert "'nope' is undefined" in await refused(response, 422, "template.text")

    other = await make_tenant(db, drivers=0)
    response = await http.post(preview, json=body, headers=bearer(other.api_key))
    await refused(response, 404, "order_id")


async def test_a_preview_speaks_the_orders_language_unless_asked_for_another(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """An order naming its customer's language previews in it; a language in the body wins."""
    order = OrderIn(
        external_ref="P-2", address="x", lat=52.5, lon=13.4, day=date.today(), language="de"
    )
    order_id = (await create_order(db, tenant.org_id, order)).id
    body = {"order_id": order_id, "kind": "delivered", "channel": "sms"}
    german = await http.post(f"{TEMPLATES}/preview", json=body, headers=bearer(tenant.api_key))
    assert "zugestellt" in german.json()["text"]
    asked = body | {"language": "en"}
    english = await http.post(f"{TEMPLATES}/preview", json=asked, headers=bearer(tenant.api_key))
    assert "was delivered" in english.json()["text"]
