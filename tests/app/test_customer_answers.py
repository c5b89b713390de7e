"""The customer answers back from the tracking page: instructions reach the driver at once,
another day takes the stop off the route, a delivered order is rated once, and whatever the
customer types is refused when it cannot be text and kept as text when it can."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from playwright.async_api import expect
from redis.asyncio import Redis

from realtime.streams import StreamNames
from tests.app.test_tracking import link_of, receive
from tests.browser import WAIT_MS, Pages
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.days import Day, device, events_of, key, plan_and_dispatch, planned

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror=alert(1)> & "quotes"'


async def route_of(http: httpx.AsyncClient, tenant: Tenant, day: Day) -> dict[str, Any]:
    """The day's route with the most stops."""
    routes = (await http.get(f"/v1/routes?day={day.day}", headers=key(tenant))).json()["routes"]
    return dict(max(routes, key=lambda r: len(r["stops"])))


async def test_instructions_from_the_page_reach_the_connected_driver_at_once(
    server: LiveServer, http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, planner: None
) -> None:
    """The driver's socket gets the route again with the gate code on the stop, and the
    dispatcher reads the same on the route and through the order."""
    await plan_and_dispatch(http, tenant, delivery_day)
    route = await route_of(http, tenant, delivery_day)
    stop = route["stops"][1]
    driver = next(d for d in tenant.drivers if d.id == route["driver_id"])
    token = await link_of(http, tenant, stop["order_id"])
    async with websockets.connect(f"{server.ws_url}/v1/driver/ws?token={driver.token}") as ws:
        current = await receive(ws)
        assert current["route"]["stops"][1]["instructions"] is None
        given = {"gate_code": "4711", "leave_at": "Behind the bins", "safe_place_allowed": True}
        response = await http.post(f"/v1/track/{token}/instructions", json=given)
        assert response.status_code == 200, response.text
        assert response.json()["source"] == "page"
        pushed = (await receive(ws))["route"]
    assert pushed["version"] == route["version"]  # the same stops, in the same order
    on_stop = next(s for s in pushed["stops"] if s["id"] == stop["id"])["instructions"]
    assert (on_stop["gate_code"], on_stop["leave_at"], on_stop["safe_place_allowed"]) == (
        "4711",
        "Behind the bins",
        True,
    )
    others = [s["instructions"] for s in pushed["stops"] if s["id"] != stop["id"]]
    assert others == [None] * len(others)
    seen = (await http.get(f"/v1/routes/{route['id']}", headers=key(tenant))).json()
    assert next(s for s in seen["stops"] if s["id"] == stop["id"])["instructions"] == on_stop
    answers = await http.get(f"/v1/orders/{stop['order_id']}/answers", headers=key(tenant))
    assert answers.status_code == 200, answers.text
    assert answers.json()["instructions"] == on_stop
    assert answers.json()["can_rate"] is False


async def test_another_day_moves_the_order_and_takes_todays_stop_off_the_route(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    redis: Redis,
) -> None:
    """The order is pending on the new day with its windows moved, the driver gets the route
    without it, and an order_rescheduled event is on the events stream."""
    await plan_and_dispatch(http, tenant, today)
    route = await route_of(http, tenant, today)
    victim = route["stops"][0]
    driver = next(d for d in tenant.drivers if d.id == route["driver_id"])
    before = (await http.get(f"/v1/orders/{victim['order_id']}", headers=key(tenant))).json()
    token = await link_of(http, tenant, victim["order_id"])
    tomorrow = today.day + timedelta(days=1)
    async with websockets.connect(f"{server.ws_url}/v1/driver/ws?token={driver.token}") as ws:
        await receive(ws)
        response = await http.post(
            f"/v1/track/{token}/reschedule", json={"day": tomorrow.isoformat()}
        )
        assert response.status_code == 200, response.text
        pushed = (await receive(ws))["route"]
    moved = response.json()
    assert (moved["from_day"], moved["to_day"], moved["route_id"]) == (
        today.day.isoformat(),
        tomorrow.isoformat(),
        route["id"],
    )
    assert pushed["version"] == route["version"] + 1
    assert [s["order_id"] for s in pushed["stops"]] == [s["order_id"] for s in route["stops"][1:]]
    after = (await http.get(f"/v1/orders/{victim['order_id']}", headers=key(tenant))).json()
    assert (after["status"], after["day"]) == ("pending", tomorrow.isoformat())
    shift = [
        datetime.fromisoformat(a["start"]) - datetime.fromisoformat(b["start"])
        for a, b in zip(after["time_windows"], before["time_windows"], strict=True)
    ]
    assert shift == [timedelta(days=1)]
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    assert (await events_of(redis, names, tenant.org_id))[-2:] == [
        "OrderRescheduled",
        "RouteChanged",
    ]
    answers = (
        await http.get(f"/v1/orders/{victim['order_id']}/answers", headers=key(tenant))
    ).json()
    assert [r["to_day"] for r in answers["reschedules"]] == [tomorrow.isoformat()]
    again = await http.post(f"/v1/track/{token}/reschedule", json={"day": tomorrow.isoformat()})
    assert again.status_code == 409


@pytest.mark.parametrize("offset_days", [0, -1, 15])
async def test_another_day_must_be_after_today_and_not_too_far(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, offset_days: int
) -> None:
    """Today, yesterday and a day past the limit are refused naming the day."""
    token = await link_of(http, tenant, delivery_day.orders["o0"])
    day = date.today() + timedelta(days=offset_days)
    response = await http.post(f"/v1/track/{token}/reschedule", json={"day": day.isoformat()})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "day"


async def test_a_delivered_order_is_rated_once_with_its_driver(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, planner: None
) -> None:
    """Before the delivery a rating is 409; after it, the first is stored with the driver and
    the second is 409."""
    await plan_and_dispatch(http, tenant, delivery_day)
    route = await route_of(http, tenant, delivery_day)
    stop = route["stops"][0]
    driver = next(d for d in tenant.drivers if d.id == route["driver_id"])
    token = await link_of(http, tenant, stop["order_id"])
    early = await http.post(f"/v1/track/{token}/rating", json={"stars": 5})
    assert early.status_code == 409, early.text
    done = await http.post(f"/v1/driver/stops/{stop['id']}/deliver", headers=device(driver.token))
    assert done.status_code == 200, done.text
    assert (await http.get(f"/v1/track/{token}/answers")).json()["can_rate"] is True
    first = await http.post(
        f"/v1/track/{token}/rating", json={"stars": 4, "comment": "Kind driver.\nThanks!"}
    )
    assert first.status_code == 201, first.text
    assert (first.json()["stars"], first.json()["driver_id"], first.json()["route_id"]) == (
        4,
        driver.id,
        route["id"],
    )
    second = await http.post(f"/v1/track/{token}/rating", json={"stars": 1})
    assert second.status_code == 409
    answers = (await http.get(f"/v1/track/{token}/answers")).json()
    assert (answers["rating"]["comment"], answers["can_rate"]) == ("Kind driver.\nThanks!", False)
    late = await http.post(f"/v1/track/{token}/instructions", json={"gate_code": "1"})
    assert late.status_code == 409


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("instructions", {"gate_code": "1" * 41}, "gate_code"),
        ("instructions", {"leave_at": "x" * 301}, "leave_at"),
        ("instructions", {"note": "bell\x07"}, "note"),
        ("instructions", {"gate_code": "12\n34"}, "gate_code"),
        ("instructions", {"leave_at": "porch\u2028"}, "leave_at"),
        ("instructions", {"note": "x\u0000"}, "note"),
        ("instructions", {"gate_code": 4711}, "gate_code"),
        ("instructions", {"owner": "me"}, "owner"),
        ("rating", {"stars": 6}, "stars"),
        ("rating", {"stars": 5, "comment": "y" * 1001}, "comment"),
        ("rating", {"stars": 5, "comment": "\x1b[31mred"}, "comment"),
        ("reschedule", {"day": "tomorrow"}, "day"),
    ],
)
async def test_text_that_cannot_be_an_answer_is_refused_naming_the_field(
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    """Too long, control characters, the wrong type or an unknown field: 400 naming it."""
    token = await link_of(http, tenant, delivery_day.orders["o0"])
    response = await http.post(f"/v1/track/{token}/{path}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


async def test_answers_need_a_live_link_and_dispatchers_see_only_their_orders(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, db: psycopg.AsyncConnection
) -> None:
    """An unknown token is 404 on every answer; another organisation's order is 404."""
    for path in ("instructions", "reschedule", "rating"):
        response = await http.post(f"/v1/track/{'A' * 24}/{path}", json={"stars": 5})
        assert response.status_code == 404, path
    assert (await http.get(f"/v1/track/{'A' * 24}/answers")).status_code == 404
    order_id = delivery_day.orders["o0"]
    assert (await http.get(f"/v1/orders/{order_id}/answers", headers=key(tenant))).is_success
    stranger = await make_tenant(db, drivers=0)
    other = await http.get(f"/v1/orders/{order_id}/answers", headers=key(stranger))
    assert other.status_code == 404
    assert (await http.get(f"/v1/orders/{order_id}/answers")).status_code == 401


async def test_hostile_text_is_stored_and_answered_as_the_same_text(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day
) -> None:
    """Markup is neither refused nor altered: it is text, stored and given back as it came."""
    token = await link_of(http, tenant, delivery_day.orders["o1"])
    response = await http.post(
        f"/v1/track/{token}/instructions", json={"leave_at": HOSTILE, "note": "ä 😀\nzwei"}
    )
    assert response.status_code == 200, response.text
    stored = (
        await http.get(f"/v1/orders/{delivery_day.orders['o1']}/answers", headers=key(tenant))
    ).json()["instructions"]
    assert (stored["leave_at"], stored["note"]) == (HOSTILE, "ä 😀\nzwei")


@pytest.mark.browser
async def test_the_page_takes_instructions_and_shows_hostile_text_as_text(
    server: LiveServer, http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, pages: Pages
) -> None:
    """The page shows stored markup literally (no element made of it, no script run) and
    sends what the customer types in its form."""
    order_id = delivery_day.orders["o2"]
    token = await link_of(http, tenant, order_id)
    stored = await http.post(f"/v1/track/{token}/instructions", json={"leave_at": HOSTILE})
    assert stored.status_code == 200, stored.text
    page = await pages.open(f"{server.url}/t/{token}")
    shown = page.locator("#answers-leave-at")
    await expect(shown).to_have_text(HOSTILE, timeout=WAIT_MS)
    assert await page.locator("#answers script, #answers img").count() == 0
    assert await page.title() != "pwned"
    await page.locator("#gate-code").fill("0815")
    await page.locator("#safe-place").select_option("no")
    await page.locator("#instructions-form button[type=submit]").click()
    await expect(page.locator("#instructions-state")).to_have_text("Saved", timeout=WAIT_MS)
    answers = (await http.get(f"/v1/orders/{order_id}/answers", headers=key(tenant))).json()
    got = answers["instructions"]
    assert (got["gate_code"], got["leave_at"], got["safe_place_allowed"]) == (
        "0815",
        HOSTILE,
        False,
    )
    # Another day, from the same page: too far is refused with the reason, a good day moves it.
    far = delivery_day.day + timedelta(days=30)
    await page.locator("#reschedule-day").fill(far.isoformat())
    await page.locator("#reschedule-form button[type=submit]").click()
    await expect(page.locator("#reschedule-state")).to_have_attribute("data-state", "error")
    later = delivery_day.day + timedelta(days=1)
    await page.locator("#reschedule-day").fill(later.isoformat())
    await page.locator("#reschedule-form button[type=submit]").click()
    await expect(page.locator("#reschedule-state")).to_contain_text("Moved to", timeout=WAIT_MS)
    order = (await http.get(f"/v1/orders/{order_id}", headers=key(tenant))).json()
    assert order["day"] == later.isoformat()


@pytest.mark.browser
async def test_the_page_asks_a_delivered_customer_for_one_rating(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    pages: Pages,
) -> None:
    """Once delivered the page asks for stars and a comment, sends them once, shows the comment
    as text, and on a fresh load shows the rating instead of asking again."""
    await plan_and_dispatch(http, tenant, delivery_day)
    route = await route_of(http, tenant, delivery_day)
    stop = route["stops"][0]
    driver = next(d for d in tenant.drivers if d.id == route["driver_id"])
    token = await link_of(http, tenant, stop["order_id"])
    page = await pages.open(f"{server.url}/t/{token}")
    await expect(page.locator("#answers")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#rating")).to_be_hidden()
    done = await http.post(f"/v1/driver/stops/{stop['id']}/deliver", headers=device(driver.token))
    assert done.status_code == 200, done.text

    await expect(page.locator("#rating-form")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#answers")).to_be_hidden()
    await page.locator("#rating-form button[type=submit]").click()
    await expect(page.locator("#rating-state")).to_contain_text("Choose 1 to 5")
    await page.locator("#rating-form input[name=stars][value='4']").check()
    await page.locator("#rating-comment").fill(HOSTILE)
    await page.locator("#rating-form button[type=submit]").click()
    await expect(page.locator("#rating-done")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#rating-stars")).to_have_text("4 of 5")
    await expect(page.locator("#rating-comment-shown")).to_have_text(HOSTILE)
    assert await page.locator("#rating script, #rating img").count() == 0

    answers = (await http.get(f"/v1/track/{token}/answers")).json()
    assert (answers["rating"]["stars"], answers["rating"]["comment"]) == (4, HOSTILE)
    again = await pages.open(f"{server.url}/t/{token}")
    await expect(again.locator("#rating-done")).to_be_visible(timeout=WAIT_MS)
    await expect(again.locator("#rating-form")).to_be_hidden()


async def test_an_order_moved_after_planning_is_left_out_of_the_plans_dispatch(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, planner: None
) -> None:
    """A planned order whose customer asks for another day before dispatch stays on its new
    day: dispatching the old plan skips it."""
    response = await http.post(
        "/v1/plans",
        json={"day": delivery_day.day.isoformat(), "time_limit_s": 1},
        headers={**key(tenant), "idempotency-key": "plan-moved"},
    )
    assert response.status_code == 202, response.text
    plan = await planned(http, tenant, response.json()["id"])
    assert plan["status"] == "done", plan
    moved_id = delivery_day.orders["o4"]
    token = await link_of(http, tenant, moved_id)
    later = delivery_day.day + timedelta(days=2)
    moved = await http.post(f"/v1/track/{token}/reschedule", json={"day": later.isoformat()})
    assert moved.status_code == 200, moved.text
    assert moved.json()["route_id"] is None
    dispatched = await http.post(f"/v1/plans/{plan['id']}/dispatch", json={}, headers=key(tenant))
    assert dispatched.status_code == 200, dispatched.text
    assert moved_id in dispatched.json()["skipped_order_ids"]
    routes = (await http.get(f"/v1/routes?day={delivery_day.day}", headers=key(tenant))).json()
    assert moved_id not in [s["order_id"] for r in routes["routes"] for s in r["stops"]]
    order = (await http.get(f"/v1/orders/{moved_id}", headers=key(tenant))).json()
    assert (order["status"], order["day"]) == ("pending", later.isoformat())


@pytest.mark.browser
async def test_the_dispatcher_sees_the_customers_instructions_as_text_on_the_stop(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    pages: Pages,
) -> None:
    """The stop's card on the dispatcher map lists the gate code and the customer's note, the
    hostile note as text that makes no element."""
    await plan_and_dispatch(http, tenant, delivery_day)
    route = await route_of(http, tenant, delivery_day)
    stop = route["stops"][1]
    token = await link_of(http, tenant, stop["order_id"])
    given = {"gate_code": "4711", "note": HOSTILE}
    response = await http.post(f"/v1/track/{token}/instructions", json=given)
    assert response.status_code == 200, response.text

    page = await pages.open(f"{server.url}/dispatch?day={delivery_day.day}#key={tenant.api_key}")
    marker = page.locator(f"path.stop[data-stop-id='{stop['id']}']")
    await marker.wait_for(timeout=WAIT_MS)
    await marker.hover()
    card = page.locator(".leaflet-tooltip")
    await expect(card).to_contain_text("Gate code: 4711", timeout=WAIT_MS)
    await expect(card.locator(".tip-instructions").last).to_have_text(f"Customer: {HOSTILE}")
    assert await card.locator("script, img").count() == 0
    assert await page.title() != "pwned"


async def test_an_order_tried_again_can_move_to_another_day(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, planner: None
) -> None:
    """An order whose first attempt failed and that was put on a later day keeps its failed
    stop; its customer may still move it to another day, and no route is touched."""
    await plan_and_dispatch(http, tenant, delivery_day)
    driver = tenant.drivers[0]
    route = (await http.get("/v1/driver/route", headers=device(driver.token))).json()
    stop = min(route["stops"], key=lambda s: s["seq"])
    failed = await http.post(
        f"/v1/driver/stops/{stop['id']}/fail",
        json={"code": "not_home", "reason": "nobody home"},
        headers=device(driver.token),
    )
    assert failed.status_code == 200, failed.text
    later = delivery_day.day + timedelta(days=1)
    again = await http.post(
        f"/v1/orders/{stop['order_id']}/reattempt",
        json={"day": later.isoformat()},
        headers=key(tenant),
    )
    assert again.status_code == 200, again.text
    token = await link_of(http, tenant, stop["order_id"])
    moved = await http.post(
        f"/v1/track/{token}/reschedule", json={"day": (later + timedelta(days=1)).isoformat()}
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["from_day"], moved.json()["route_id"]) == (later.isoformat(), None)
