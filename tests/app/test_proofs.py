"""Proof of delivery through the live API: capture, replay, requirements, parcels, failures,
re-attempts, search, signed images and the audit chain."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import numpy as np
import psycopg
import pytest
import zxingcpp
from PIL import Image
from redis.asyncio import Redis

from app.api.proofs import make_blob_store, proof_photo_link
from app.auth import issue_api_key
from app.settings import Settings
from realtime.streams import StreamNames
from schemas.codecs import EVENT_DECODER
from schemas.events import Event, ParcelsFlagged, StopFailed
from tests.conftest import Tenant, make_tenant
from tests.days import Day, device, key, plan_and_dispatch, planned
from tests.store.test_audit import tampering

STROKES = '{"width": 200, "height": 80, "strokes": [[[10, 40], [190, 40]]]}'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small limits, so that refusals are cheap to provoke."""
    return msgspec.structs.replace(settings, proof_max_bytes=2_000_000, image_max_pixels=3_000_000)


def photo_bytes(size: tuple[int, int] = (320, 240), *, gps: bool = False) -> bytes:
    picture = Image.new("RGB", size, (90, 140, 200))
    exif = Image.Exif()
    if gps:
        exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 0.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    out = io.BytesIO()
    picture.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def label_bytes(code: str) -> bytes:
    barcode = zxingcpp.create_barcode(code, zxingcpp.BarcodeFormat.Code128)
    label = Image.fromarray(np.array(barcode.to_image(scale=4))).convert("RGB")
    picture = Image.new("RGB", (1000, 700), (240, 238, 230))
    picture.paste(label, (200, 250))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


async def driver_stops(
    http: httpx.AsyncClient, tenant: Tenant, day: Day, parcels: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """Plan and dispatch the day (the order refs in ``parcels`` get those parcels first) and
    return the first driver's stops."""
    for ref, codes in (parcels or {}).items():
        patched = await http.patch(
            f"/v1/orders/{day.orders[ref]}",
            json={"parcels": [{"barcode": c} for c in codes]},
            headers=key(tenant),
        )
        assert patched.status_code == 200, patched.text
    await plan_and_dispatch(http, tenant, day)
    route = await http.get("/v1/driver/route", headers=device(tenant.drivers[0].token))
    assert route.status_code == 200, route.text
    stops: list[dict[str, Any]] = route.json()["stops"]
    return stops


async def capture(
    http: httpx.AsyncClient,
    tenant: Tenant,
    stop_id: int,
    idem: str,
    data: dict[str, Any],
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
) -> httpx.Response:
    # Every field as a part of the multipart body, as browsers' FormData sends them.
    fields: list[tuple[str, Any]] = [
        (name, (None, item))
        for name, value in data.items()
        for item in (value if isinstance(value, list) else [value])
    ]
    return await http.post(
        f"/v1/driver/stops/{stop_id}/proof",
        files=fields + list(files or []),
        headers={**device(tenant.drivers[0].token), "idempotency-key": idem},
    )


async def stream_events(redis: Redis, settings: Settings) -> list[Event]:
    """Every event on this test's events stream, oldest first."""
    names = StreamNames(settings.redis_prefix, settings.ping_shards)
    entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", await redis.xrange(names.events))
    return [EVENT_DECODER.decode(fields[b"e"]) for _, fields in entries]


async def count(db: psycopg.AsyncConnection, query: str, *params: Any) -> int:
    row = await (await db.execute(query, params)).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_capture_stores_the_proof_once_and_closes_the_stop(
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    db: psycopg.AsyncConnection,
) -> None:
    """Photo, strokes, name, notes, scans and position are stored; a replay stores nothing."""
    stop = (await driver_stops(http, tenant, delivery_day))[0]
    data = {
        "outcome": "delivered",
        "recipient_name": "Dana <b>Schulz</b>",
        "notes": "at the door",
        "signature_strokes": STROKES,
        "scan": ["ZZ-1"],
        "lat": "52.52",
        "lon": "13.40",
        "accuracy_m": "6",
        "device_time": "2026-12-06T10:00:00+01:00",
    }
    files = [("photo", ("door.jpg", photo_bytes(gps=True), "image/jpeg"))]
    first = await capture(http, tenant, stop["id"], "cap-1", data, files)
    assert first.status_code == 201, first.text
    proof = first.json()
    assert proof["outcome"] == "delivered"
    assert proof["recipient_name"] == "Dana <b>Schulz</b>"
    assert proof["device_time"] == "2026-12-06T09:00:00Z"
    assert proof["unexpected_parcels"] == ["ZZ-1"]
    assert proof["photos"][0]["exif_lat"] == pytest.approx(52.5167, abs=1e-3)
    again = await capture(http, tenant, stop["id"], "cap-1", data, files)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == proof["id"]
    assert await count(db, "SELECT count(*) FROM proofs WHERE stop_id = %s", stop["id"]) == 1
    images = await count(db, "SELECT count(*) FROM proof_images WHERE proof_id = %s", proof["id"])
    assert images == 2
    served = await http.get(proof["photos"][0]["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert dict(Image.open(io.BytesIO(served.content)).getexif()) == {}
    assert (await http.get(proof["signature_url"])).headers["content-type"] == "image/png"
    forged = proof["photos"][0]["url"].replace("sig=", "sig=0")
    assert (await http.get(forged)).status_code == 404
    route = (await http.get("/v1/driver/route", headers=device(tenant.drivers[0].token))).json()
    assert [s["status"] for s in route["stops"] if s["id"] == stop["id"]] == ["delivered"]
    other_stop = await capture(http, tenant, route["stops"][1]["id"], "cap-1", data, files)
    assert other_stop.status_code == 422
    assert other_stop.json()["error"] == "idempotency_key_reused"
    closed = await capture(http, tenant, stop["id"], "cap-2", data, files)
    assert closed.status_code == 409


async def test_requirements_are_enforced_and_a_dispatcher_can_override(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, planner: None
) -> None:
    """Without what the order requires, closing is 422 naming it; an override waives it."""
    stops = await driver_stops(http, tenant, delivery_day)
    defaults = {"photo": True, "signature": True, "recipient_name": False}
    put = await http.put("/v1/settings/proof-requirements", json=defaults, headers=key(tenant))
    assert put.status_code == 200, put.text
    order_id = stops[1]["order_id"]
    own = await http.put(
        f"/v1/orders/{order_id}/proof-requirements", json={"min_age": 18}, headers=key(tenant)
    )
    assert own.json() == {
        "photo": False,
        "signature": False,
        "all_parcels": False,
        "recipient_name": False,
        "min_age": 18,
    }
    bare = await http.post(
        f"/v1/driver/stops/{stops[0]['id']}/deliver", headers=device(tenant.drivers[0].token)
    )
    assert bare.status_code == 422
    assert bare.json()["error"] == "requirements_unmet"
    assert bare.json()["field"] == "photo, signature"
    files = [("photo", ("p.jpg", photo_bytes(), "image/jpeg"))]
    partial = await capture(http, tenant, stops[0]["id"], "r-1", {"outcome": "delivered"}, files)
    assert partial.status_code == 422
    assert partial.json()["field"] == "signature"
    aged = await capture(http, tenant, stops[1]["id"], "r-2", {"outcome": "delivered"})
    assert aged.json()["field"] == "age_verified"
    waive = {"reason": "customer confirmed by phone", "waive": ["signature"]}
    override = await http.post(
        f"/v1/stops/{stops[0]['id']}/proof-override", json=waive, headers=key(tenant)
    )
    assert override.status_code == 201, override.text
    done = await capture(http, tenant, stops[0]["id"], "r-3", {"outcome": "delivered"}, files)
    assert done.status_code == 201, done.text
    assert done.json()["overrides"][0]["waived"] == ["signature"]
    assert done.json()["overrides"][0]["reason"] == "customer confirmed by phone"
    verified = {"outcome": "delivered", "age_verified": "true"}
    assert (await capture(http, tenant, stops[1]["id"], "r-4", verified)).status_code == 201


async def test_refusals_name_the_part_and_the_reason(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, planner: None
) -> None:
    """Text as a photo is 415, too many pixels or bytes 413, bad fields 400, each named."""
    stop_id = (await driver_stops(http, tenant, delivery_day))[0]["id"]
    delivered = {"outcome": "delivered"}
    text = [("photo", ("x.jpg", b"not a picture at all\n" * 20, "image/jpeg"))]
    refused = await capture(http, tenant, stop_id, "e-1", delivered, text)
    assert (refused.status_code, refused.json()["field"]) == (415, "photo[0]")
    wide = io.BytesIO()
    Image.new("RGB", (2000, 2000)).save(wide, format="PNG")
    big = [("photo", ("w.png", wide.getvalue(), "image/png"))]
    too_many = await capture(http, tenant, stop_id, "e-2", delivered, big)
    assert (too_many.status_code, too_many.json()["field"]) == (413, "photo[0]")
    huge = [("photo", ("h.jpg", b"\xff" * 2_100_000, "image/jpeg"))]
    too_big = await capture(http, tenant, stop_id, "e-3", delivered, huge)
    assert (too_big.status_code, too_big.json()["field"]) == (413, "body")
    no_code = await capture(http, tenant, stop_id, "e-4", {"outcome": "failed"})
    assert (no_code.status_code, no_code.json()["field"]) == (400, "failure_code")
    half = await capture(http, tenant, stop_id, "e-5", {**delivered, "lat": "52.5"})
    assert (half.status_code, half.json()["field"]) == (400, "lon")
    bad_scan = await capture(http, tenant, stop_id, "e-6", {**delivered, "scan": ["a b"]})
    assert (bad_scan.status_code, bad_scan.json()["field"]) == (400, "scan[0]")
    no_key = await http.post(
        f"/v1/driver/stops/{stop_id}/proof",
        data=delivered,
        files=text,
        headers=device(tenant.drivers[0].token),
    )
    assert (no_key.status_code, no_key.json()["field"]) == (400, "Idempotency-Key")
    as_json = await http.post(
        f"/v1/driver/stops/{stop_id}/proof",
        json=delivered,
        headers={**device(tenant.drivers[0].token), "idempotency-key": "e-7"},
    )
    assert (as_json.status_code, as_json.json()["field"]) == (415, "Content-Type")
    still_open = await capture(http, tenant, stop_id, "e-8", delivered)
    assert still_open.status_code == 201


async def test_parcels_are_reconciled_with_scans_and_label_photos(
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    redis: Redis,
    settings: Settings,
) -> None:
    """A label photo's barcode counts as a scan; missing and unexpected parcels are flagged."""
    parcels = {ref: [f"{ref}-A", f"{ref}-B"] for ref in delivery_day.orders}
    stops = await driver_stops(http, tenant, delivery_day, parcels)
    await http.put(
        "/v1/settings/proof-requirements", json={"all_parcels": True}, headers=key(tenant)
    )
    ref = stops[0]["order_ref"]
    only_one = {"outcome": "delivered", "scan": [f"{ref}-A"]}
    missing = await capture(http, tenant, stops[0]["id"], "p-1", only_one)
    assert (missing.status_code, missing.json()["field"]) == (422, "parcels")
    labels = [("label_photo", ("label.png", label_bytes(f"{ref}-B"), "image/png"))]
    both = {"outcome": "delivered", "scan": [f"{ref}-A", "STRAY-9"]}
    done = await capture(http, tenant, stops[0]["id"], "p-2", both, labels)
    assert done.status_code == 201, done.text
    proof = done.json()
    assert proof["decoded_scans"] == [f"{ref}-B"]
    assert proof["missing_parcels"] == []
    assert proof["unexpected_parcels"] == ["STRAY-9"]
    assert len(proof["labels"]) == 1
    events = await stream_events(redis, settings)
    flagged = [e for e in events if isinstance(e, ParcelsFlagged)]
    assert [(e.stop_id, e.missing, e.unexpected) for e in flagged] == [
        (stops[0]["id"], [], ["STRAY-9"])
    ]


async def test_a_failed_stop_keeps_its_code_and_can_be_tried_again_later(
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    redis: Redis,
    settings: Settings,
    db: psycopg.AsyncConnection,
) -> None:
    """A failure with a code and a photo is stored; the order goes to a later day, attempt 2."""
    stops = await driver_stops(http, tenant, delivery_day)
    files = [("photo", ("door.jpg", photo_bytes(), "image/jpeg"))]
    failed = {"outcome": "failed", "failure_code": "not_home", "notes": "card left"}
    answer = await capture(http, tenant, stops[0]["id"], "f-1", failed, files)
    assert answer.status_code == 201, answer.text
    assert (answer.json()["failure_code"], answer.json()["attempt"]) == ("not_home", 1)
    bare = await http.post(
        f"/v1/driver/stops/{stops[1]['id']}/fail",
        json={"code": "access_problem", "reason": "gate locked"},
        headers=device(tenant.drivers[0].token),
    )
    assert bare.status_code == 200, bare.text
    code = await db.execute("SELECT failure_code FROM stops WHERE id = %s", (stops[1]["id"],))
    assert await code.fetchone() == ("access_problem",)
    events = await stream_events(redis, settings)
    codes = [(e.stop_id, e.code) for e in events if isinstance(e, StopFailed)]
    assert codes == [(stops[0]["id"], "not_home"), (stops[1]["id"], "access_problem")]
    order_id = stops[0]["order_id"]
    later = delivery_day.day.fromordinal(delivery_day.day.toordinal() + 2).isoformat()
    again = await http.post(
        f"/v1/orders/{order_id}/reattempt", json={"day": later}, headers=key(tenant)
    )
    assert again.status_code == 200, again.text
    assert again.json() == {"order_id": order_id, "day": later, "attempt": 2}
    order = (await http.get(f"/v1/orders/{order_id}", headers=key(tenant))).json()
    assert (order["status"], order["day"]) == ("pending", later)
    assert order["time_windows"][0]["start"].startswith(later)
    twice = await http.post(
        f"/v1/orders/{order_id}/reattempt", json={"day": later}, headers=key(tenant)
    )
    assert twice.status_code == 409
    same_day = await http.post(
        f"/v1/orders/{stops[1]['order_id']}/reattempt",
        json={"day": delivery_day.day.isoformat()},
        headers=key(tenant),
    )
    assert (same_day.status_code, same_day.json()["field"]) == (400, "day")


async def test_search_filters_and_other_organisations_see_nothing(
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    db: psycopg.AsyncConnection,
) -> None:
    """Search by order, driver, customer, day, outcome and text; another org gets 404s."""
    stops = await driver_stops(http, tenant, delivery_day)
    ok = await capture(
        http, tenant, stops[0]["id"], "s-1", {"outcome": "delivered", "notes": "blue door"}
    )
    bad = {"outcome": "failed", "failure_code": "refused"}
    ko = await capture(http, tenant, stops[1]["id"], "s-2", bad)
    assert (ok.status_code, ko.status_code) == (201, 201)

    async def ids(query: str) -> list[int]:
        found = await http.get(f"/v1/proofs?{query}", headers=key(tenant))
        assert found.status_code == 200, found.text
        return [p["id"] for p in found.json()["proofs"]]

    ok_id, ko_id = ok.json()["id"], ko.json()["id"]
    day = delivery_day.day.isoformat()
    assert await ids("") == [ko_id, ok_id]
    assert await ids(f"order_id={stops[0]['order_id']}") == [ok_id]
    assert await ids(f"driver_id={tenant.drivers[0].id}&outcome=failed") == [ko_id]
    assert await ids(f"customer=Customer%20{stops[1]['order_ref']}") == [ko_id]
    assert await ids("q=BLUE") == [ok_id]
    assert await ids("q=refused") == [ko_id]
    assert await ids(f"from={day}&to={day}") == [ko_id, ok_id]
    assert await ids("to=2000-01-01") == []
    assert await ids("q=%25") == []
    page = (await http.get("/v1/proofs?limit=1", headers=key(tenant))).json()
    assert page["truncated"] is True
    bad_outcome = await http.get("/v1/proofs?outcome=maybe", headers=key(tenant))
    assert (bad_outcome.status_code, bad_outcome.json()["field"]) == (400, "outcome")
    stranger = await make_tenant(db)
    foreign = await http.get(f"/v1/proofs/{ok_id}", headers=key(stranger))
    assert foreign.status_code == 404
    assert (await http.get("/v1/proofs", headers=key(stranger))).json()["proofs"] == []
    by_stop = await http.get(f"/v1/stops/{stops[0]['id']}/proof", headers=key(tenant))
    assert by_stop.json()["id"] == ok_id


async def test_every_transition_is_in_the_audit_chain_and_tampering_is_found(
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    db: psycopg.AsyncConnection,
) -> None:
    """Dispatch, start, arrive, proof and close are audited; the admin check finds an altered
    row."""
    stops = await driver_stops(http, tenant, delivery_day)
    token = device(tenant.drivers[0].token)
    await http.post("/v1/driver/route/start", headers=token)
    await http.post(f"/v1/driver/stops/{stops[0]['id']}/arrive", headers=token)
    await capture(http, tenant, stops[0]["id"], "a-1", {"outcome": "delivered"})
    kinds = await db.execute(
        "SELECT kind FROM audit_log WHERE org_id = %s ORDER BY seq", (tenant.org_id,)
    )
    assert [k for (k,) in await kinds.fetchall()] == [
        "route.dispatched",
        "route.dispatched",
        "route.started",
        "stop.arrived",
        "proof.captured",
        "stop.delivered",
    ]
    dispatcher = await http.get("/v1/audit/verify", headers=key(tenant))
    assert dispatcher.status_code == 403
    admin = {
        "authorization": f"Bearer {await issue_api_key(db, tenant.org_id, role='admin', name='a')}"
    }
    intact = await http.get("/v1/audit/verify", headers=admin)
    assert intact.json() == {
        "org_id": tenant.org_id,
        "ok": True,
        "entries": 6,
        "first_bad_seq": None,
        "reason": None,
    }
    await tampering(
        db,
        "UPDATE audit_log SET record = replace(record, 'delivered', 'failed')"
        " WHERE org_id = %s AND seq = 5",
        tenant.org_id,
    )
    broken = (await http.get("/v1/audit/verify", headers=admin)).json()
    assert (broken["ok"], broken["first_bad_seq"]) == (False, 5)


async def test_a_proof_photo_link_is_absolute_signed_and_expiring(settings: Settings) -> None:
    """The link for a customer message names the public URL, the blob and its own lifetime."""
    public = msgspec.structs.replace(settings, public_url="https://deliveries.example/")
    blobs = make_blob_store(public)
    stored = await blobs.put_bytes(b"\xff\xd8 a photo", "image/jpeg")
    link = proof_photo_link(blobs, public, stored.sha256, ttl_s=86_400)
    assert link.startswith(f"https://deliveries.example/v1/blobs/{stored.sha256}?")
    query = parse_qs(urlsplit(link).query)
    assert query["type"] == ["image/jpeg"]
    assert 86_000 < int(query["expires"][0]) - time.time() <= 86_400


async def test_an_order_tried_again_is_planned_on_its_new_day_as_attempt_two(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, planner: None
) -> None:
    """The failed order is planned and dispatched again on the later day; its proof says 2."""
    stop = (await driver_stops(http, tenant, delivery_day))[0]
    failed = {"outcome": "failed", "failure_code": "not_home"}
    assert (await capture(http, tenant, stop["id"], "t-1", failed)).status_code == 201
    later = delivery_day.day + timedelta(days=1)
    moved = await http.post(
        f"/v1/orders/{stop['order_id']}/reattempt",
        json={"day": later.isoformat()},
        headers=key(tenant),
    )
    assert moved.status_code == 200, moved.text
    depot = (await http.get("/v1/depots", headers=key(tenant))).json()["depots"][0]["id"]
    vehicle = (await http.get("/v1/vehicles", headers=key(tenant))).json()["vehicles"][0]["id"]
    start = datetime(later.year, later.month, later.day, 7, tzinfo=UTC)
    shift = {
        "driver_id": tenant.drivers[0].id,
        "vehicle_id": vehicle,
        "day": later.isoformat(),
        "start_place": {"depot_id": depot},
        "working_window": {
            "start": start.isoformat(),
            "end": (start + timedelta(hours=12)).isoformat(),
        },
    }
    assert (await http.post("/v1/shifts", json=shift, headers=key(tenant))).status_code == 201
    queued = await http.post(
        "/v1/plans",
        json={"day": later.isoformat(), "time_limit_s": 1},
        headers={**key(tenant), "idempotency-key": "plan-again"},
    )
    plan = await planned(http, tenant, queued.json()["id"])
    assert plan["status"] == "done", plan
    dispatched = await http.post(f"/v1/plans/{plan['id']}/dispatch", json={}, headers=key(tenant))
    assert dispatched.status_code == 200, dispatched.text
    day_routes = await http.get(f"/v1/routes?day={later.isoformat()}", headers=key(tenant))
    [route] = day_routes.json()["routes"]
    assert route["driver_id"] == tenant.drivers[0].id
    again = next(s for s in route["stops"] if s["order_id"] == stop["order_id"])
    assert again["id"] != stop["id"]
    done = await capture(http, tenant, again["id"], "t-2", {"outcome": "delivered"})
    assert done.status_code == 201, done.text
    assert done.json()["attempt"] == 2
    history = await http.get(f"/v1/proofs?order_id={stop['order_id']}", headers=key(tenant))
    assert [(p["outcome"], p["attempt"]) for p in history.json()["proofs"]] == [
        ("delivered", 2),
        ("failed", 1),
    ]
