"""Bulk import of orders from CSV and JSON: good rows in, bad rows reported with line, field
and reason, nothing created twice."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api import order_import as order_rows
from app.api.orders import check_order
from app.errors import ApiError
from realtime.errors import IngestError
from store.delivery import OrgSettings
from tests.conftest import Tenant, make_tenant

HEADER = (
    "ref,customer_name,phone,email,address,lat,lon,day,window_start,window_end,"
    "window2_start,window2_end,service_s,weight_kg,volume_l,parcels,priority,skills,barcodes,notes"
)
GOOD_1 = (
    "A-1,Dana,+49 30 1,dana@example.org,Torstr. 1,52.53,13.40,2026-12-01,09:00,11:00,"
    "15:00,17:00,120,4,20,2,2,cooling|fragile,B-1;B-2,ring"
)
GOOD_2 = "A-2,Eli,,,Invalidenstr. 2,52.53,13.38,2026-12-01,,,,,,,,,,,,"
BAD_LAT = "A-3,Fay,,,Chausseestr. 3,95,13.38,2026-12-01,,,,,,,,,,,,"
BAD_WINDOW = "A-4,Gus,,,Linienstr. 4,52.5,13.4,2026-12-01,10:00,12:00,14:00,13:00,,,,,,,,"
BAD_WEIGHT = "A-5,Hal,,,Auguststr. 5,52.5,13.4,2026-12-01,,,,,,heavy,,,,,,"
CSV_BODY = "\n".join([HEADER, GOOD_1, GOOD_2, BAD_LAT, BAD_WINDOW, BAD_WEIGHT]) + "\n"


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def import_csv(http: httpx.AsyncClient, key: str, body: str) -> httpx.Response:
    return await http.post(
        "/v1/orders/import",
        content=body.encode(),
        headers={**auth(key), "content-type": "text/csv; charset=utf-8"},
    )


def lines(rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(row["line"], row["external_ref"]) for row in rows]


async def test_good_rows_are_imported_and_bad_rows_reported(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Two good rows become orders; three bad rows are reported with line, column and reason."""
    response = await import_csv(http, tenant.api_key, CSV_BODY)
    assert response.status_code == 200
    result = response.json()
    assert result["rows"] == 5
    assert lines(result["created"]) == [(2, "A-1"), (3, "A-2")]
    assert result["duplicates"] == []
    assert result["rejected"] == [
        {"line": 4, "field": "lat", "reason": "expected a number <= 90.0, got '95'"},
        {
            "line": 5,
            "field": "window2_end",
            "reason": "expected a time after start 2026-12-01T14:00:00Z, got 2026-12-01T13:00:00Z",
        },
        {"line": 6, "field": "weight_kg", "reason": "expected an integer, got 'heavy'"},
    ]
    order = await http.get(
        f"/v1/orders/{result['created'][0]['order_id']}", headers=auth(tenant.api_key)
    )
    stored = order.json()
    assert stored["time_windows"] == [
        {"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T11:00:00Z"},
        {"start": "2026-12-01T15:00:00Z", "end": "2026-12-01T17:00:00Z"},
    ]
    assert stored["size"] == {"weight_kg": 4, "volume_l": 20, "parcels": 2}
    assert stored["required_skills"] == ["cooling", "fragile"]
    assert stored["parcels"] == [{"barcode": "B-1"}, {"barcode": "B-2"}]
    assert (stored["service_s"], stored["priority"], stored["notes"]) == (120, 2, "ring")


async def test_an_opt_out_column_is_read_as_a_flag(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """``notifications_opt_out`` takes true/false (or 1/0); an empty cell is false, any other
    word is reported on its line."""
    body = "\n".join(
        [
            "ref,address,lat,lon,day,notifications_opt_out",
            "O-1,Torstr. 1,52.53,13.40,2026-12-01,true",
            "O-2,Torstr. 2,52.53,13.40,2026-12-01,0",
            "O-3,Torstr. 3,52.53,13.40,2026-12-01,",
            "O-4,Torstr. 4,52.53,13.40,2026-12-01,please",
        ]
    )
    result = (await import_csv(http, tenant.api_key, body)).json()
    assert lines(result["created"]) == [(2, "O-1"), (3, "O-2"), (4, "O-3")]
    [problem] = result["rejected"]
    assert (problem["line"], problem["field"]) == (5, "notifications_opt_out")
    flags = []
    for row in result["created"]:
        order = await http.get(f"/v1/orders/{row['order_id']}", headers=auth(tenant.api_key))
        flags.append(order.json()["notifications_opt_out"])
    assert flags == [True, False, False]


async def test_reimporting_a_file_creates_nothing_twice(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The second import of the same file reports its good rows as duplicates of the first."""
    first = (await import_csv(http, tenant.api_key, CSV_BODY)).json()
    second = (await import_csv(http, tenant.api_key, CSV_BODY)).json()
    assert second["created"] == []
    assert second["duplicates"] == first["created"]
    assert [r["line"] for r in second["rejected"]] == [4, 5, 6]
    listed = await http.get("/v1/orders", headers=auth(tenant.api_key))
    assert [o["external_ref"] for o in listed.json()["orders"]] == ["A-1", "A-2"]


async def test_a_ref_repeated_inside_a_file_is_a_duplicate(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A ref that appears twice in one file is created once and its second line reported."""
    body = "ref,address,lat,lon,day\nR-1,a,1,2,2026-12-01\nR-1,b,1,2,2026-12-01\n"
    result = (await import_csv(http, tenant.api_key, body)).json()
    assert lines(result["created"]) == [(2, "R-1")]
    assert lines(result["duplicates"]) == [(3, "R-1")]
    assert result["duplicates"][0]["order_id"] == result["created"][0]["order_id"]


async def test_local_times_semicolons_and_blank_lines(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection
) -> None:
    """Semicolon CSV with clock times is read in the organisation's zone; blank lines count."""
    tenant = await make_tenant(db, drivers=0, role="integration")
    await db.execute("UPDATE orgs SET timezone = 'Europe/Berlin' WHERE id = %s", (tenant.org_id,))
    body = (
        "REF;Address;lat;lon;day;window_start;window_end\n"
        "\n"
        "B-1;Platz 1;52.5;13.4;2026-12-01;9:00;2026-12-01T10:30\n"
        "B-2;Platz 2;52.5;13.4;2026-12-01;25:00;26:00\n"
    )
    result = (await import_csv(http, tenant.api_key, body)).json()
    assert lines(result["created"]) == [(3, "B-1")]
    assert result["rejected"] == [
        {
            "line": 4,
            "field": "window_start",
            "reason": "expected a time such as 09:30, 2026-11-24T09:30 or"
            " 2026-11-24T09:30:00+01:00, got '25:00'",
        }
    ]
    stored = await http.get(
        f"/v1/orders/{result['created'][0]['order_id']}", headers=auth(tenant.api_key)
    )
    assert stored.json()["time_windows"] == [
        {"start": "2026-12-01T08:00:00Z", "end": "2026-12-01T09:30:00Z"}
    ]


async def test_a_bad_header_refuses_the_whole_file(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """An unknown, repeated or missing required column is a 400 naming the column."""
    for header, field, start in (
        ("ref,address,lat,lon,day,wieght_kg", "wieght_kg", "unknown column; expected ref,"),
        ("ref,address,lat,lon,day,lat", "lat", "expected each column once"),
        ("ref,address,lat,lon", "day", "the header lacks this required column"),
    ):
        response = await import_csv(http, tenant.api_key, header + "\n")
        assert response.status_code == 400, header
        assert response.json()["field"] == field
        assert response.json()["reason"].startswith(start)
    listed = await http.get("/v1/orders", headers=auth(tenant.api_key))
    assert listed.json()["orders"] == []


async def test_json_import_reports_array_indexes(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """A JSON array imports like CSV; problems name the array index and the JSON field."""
    good = {"external_ref": "J-1", "address": "a", "lat": 1, "lon": 2, "day": "2026-12-01"}
    bad = {**good, "external_ref": "J-2", "email": "nope"}
    response = await http.post(
        "/v1/orders/import", json=[good, bad, "x"], headers=auth(tenant.api_key)
    )
    result = response.json()
    assert response.status_code == 200
    assert lines(result["created"]) == [(0, "J-1")]
    assert result["rejected"] == [
        {
            "line": 1,
            "field": "email",
            "reason": "expected an email address containing @, got 'nope'",
        },
        {"line": 2, "field": "$", "reason": "expected an object, got 'x'"},
    ]
    none_good = await http.post("/v1/orders/import", json=[bad], headers=auth(tenant.api_key))
    assert none_good.status_code == 422
    not_array = await http.post(
        "/v1/orders/import", json={"orders": []}, headers=auth(tenant.api_key)
    )
    assert (not_array.status_code, not_array.json()["error"]) == (400, "malformed_body")


async def test_limits_on_rows_bytes_and_media_type(
    http: httpx.AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Too many rows or bytes are 413, another media type 415, and a dispatcher key may import."""
    monkeypatch.setattr(order_rows, "MAX_IMPORT_ROWS", 2)
    rows = "".join(f"M-{n},a,1,2,2026-12-01\n" for n in range(3))
    too_many = await import_csv(http, tenant.api_key, "ref,address,lat,lon,day\n" + rows)
    assert too_many.status_code == 413
    assert too_many.json() == {
        "error": "payload_too_large",
        "field": "rows",
        "reason": "expected at most 2 rows, got more",
    }
    huge = await import_csv(http, tenant.api_key, "x" * (4 * 1024 * 1024 + 1))
    assert huge.status_code == 413
    xml = await http.post(
        "/v1/orders/import",
        content=b"<orders/>",
        headers={**auth(tenant.api_key), "content-type": "application/xml"},
    )
    assert (xml.status_code, xml.json()["field"]) == (415, "Content-Type")
    listed = await http.get("/v1/orders", headers=auth(tenant.api_key))
    assert listed.json()["orders"] == []


ORG = OrgSettings(dimensions=["weight_kg", "volume_l", "parcels"], timezone="Europe/Berlin")
CELLS = st.sampled_from(
    ["", "A-1", "52.5", "-200", "nan", "2026-12-01", "09:00", "25:61", "x|y;z", "1e400", '"', "\n"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([*HEADER.split(","), "bogus"]), min_size=1, max_size=8),
    st.lists(st.lists(CELLS | st.text(max_size=12), max_size=10), max_size=5),
)
def test_any_csv_is_read_or_refused_with_a_named_field(
    header: list[str], records: list[list[str]]
) -> None:
    """Whatever the cells, a CSV gives orders and problems or a 4xx error, never a crash."""
    body = "\n".join(",".join(cells) for cells in [header, *records]).encode()
    refused: ApiError | IngestError | None = None
    try:
        rows = order_rows.read_rows(body, "text/csv", ORG)
    except (ApiError, IngestError) as exc:
        refused = exc
    if refused is not None:
        assert refused.field
        return
    problems: list[str] = []
    for line, order in rows.orders:
        try:
            check_order(order, ORG)
        except ApiError as exc:
            problems.append(rows.problem(line, exc).field)
    assert all(problems)
    assert len(rows.orders) + len(rows.rejected) == rows.rows
