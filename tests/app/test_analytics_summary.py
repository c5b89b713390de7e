"""The weekly summary through the live API, on the constructed fortnight of
``tests/fortnight.py``: previewed by a dispatcher, sent now to the organisation's
recipients through the outbox, refused to integrations and for weeks that are no weeks."""

from __future__ import annotations

from datetime import timedelta

import httpx
import msgspec
import psycopg
import pytest

from app.auth import issue_api_key
from app.settings import Settings
from tests.conftest import make_tenant
from tests.fortnight import HOSTILE_ADDRESS, WEEK, build_fortnight

SUMMARY = "/v1/analytics/weekly-summary"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """An SMTP relay is configured (nothing is sent: the API only queues)."""
    return msgspec.structs.replace(
        settings, smtp_host="127.0.0.1", smtp_port=2525, smtp_tls="none", smtp_from="a@b.example"
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_a_dispatcher_previews_a_week_and_sends_it_now(
    db: psycopg.AsyncConnection, http: httpx.AsyncClient
) -> None:
    """The preview has the week's figures, the recipients and the email with the hostile
    address as text; sending now queues one email per recipient, again on each call."""
    fortnight = await build_fortnight(db)
    key = bearer(await issue_api_key(db, fortnight.org_id, role="dispatcher", name="d"))
    shown = await http.get(SUMMARY, params={"week": str(WEEK)}, headers=key)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["summary"]["week"]["week_start"], body["summary"]["week"]["stops"]) == (
        str(WEEK),
        6,
    )
    assert body["recipients"] == fortnight.emails
    assert HOSTILE_ADDRESS in body["text"]
    assert "<script>" not in body["html"]
    assert body["subject"].endswith("23.–29. Nov. 2026")
    for _ in range(2):
        sent = await http.post(f"{SUMMARY}/send", params={"week": str(WEEK)}, headers=key)
        assert sent.status_code == 202, sent.text
        assert sent.json() == {
            "week_start": str(WEEK),
            "recipients": fortnight.emails,
            "queued": 2,
        }
    rows = await (
        await db.execute(
            "SELECT address, body_html IS NOT NULL FROM outbox"
            " WHERE org_id = %s AND kind = 'weekly_summary' ORDER BY id",
            (fortnight.org_id,),
        )
    ).fetchall()
    assert rows == [(a, True) for a in fortnight.emails] * 2
    scheduled = await (
        await db.execute("SELECT 1 FROM weekly_summaries WHERE org_id = %s", (fortnight.org_id,))
    ).fetchall()
    assert scheduled == []  # sending now is no stand-in for Monday's


async def test_a_retried_send_with_its_key_queues_nothing_again(
    db: psycopg.AsyncConnection, http: httpx.AsyncClient
) -> None:
    """The same ``Idempotency-Key`` for the same week replays the first answer and queues
    nothing more; for another week it is refused (422); a new key sends again."""
    fortnight = await build_fortnight(db)
    key = bearer(await issue_api_key(db, fortnight.org_id, role="dispatcher", name="d"))
    once = {**key, "idempotency-key": "send-once"}
    first = await http.post(f"{SUMMARY}/send", params={"week": str(WEEK)}, headers=once)
    again = await http.post(f"{SUMMARY}/send", params={"week": str(WEEK)}, headers=once)
    assert (first.status_code, again.status_code) == (202, 202), again.text
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    earlier = str(WEEK - timedelta(days=7))
    reused = await http.post(f"{SUMMARY}/send", params={"week": earlier}, headers=once)
    assert reused.status_code == 422, reused.text
    fresh = {**key, "idempotency-key": "send-twice"}
    assert (
        await http.post(f"{SUMMARY}/send", params={"week": earlier}, headers=fresh)
    ).status_code == 202
    count = await (
        await db.execute(
            "SELECT count(*) FROM outbox WHERE org_id = %s AND kind = 'weekly_summary'",
            (fortnight.org_id,),
        )
    ).fetchone()
    assert count == (2 * len(fortnight.emails),)


async def test_who_and_which_week_may_ask(
    db: psycopg.AsyncConnection, http: httpx.AsyncClient
) -> None:
    """An integration is refused (403); a day that is no Monday, or a week not over, is a 400
    naming ``week``; an organisation without recipients cannot send now (409)."""
    tenant = await make_tenant(db, drivers=1)
    integration = await issue_api_key(db, tenant.org_id, role="integration", name="i")
    assert (await http.get(SUMMARY, headers=bearer(integration))).status_code == 403
    for week in ("2026-11-24", "2999-01-04"):
        refused = await http.get(SUMMARY, params={"week": week}, headers=bearer(tenant.api_key))
        assert refused.status_code == 400, refused.text
        assert refused.json()["field"] == "week"
    empty = await http.get(SUMMARY, headers=bearer(tenant.api_key))
    assert empty.status_code == 200
    assert empty.json()["summary"]["week"]["stops"] == 0
    nobody = await http.post(f"{SUMMARY}/send", headers=bearer(tenant.api_key))
    assert nobody.status_code == 409
    assert nobody.json()["field"] == "summary_emails"
