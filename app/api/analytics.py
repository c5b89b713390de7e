"""``GET /v1/analytics/deliveries`` and ``GET /v1/analytics/routes``: the facts, reported;
``GET /v1/analytics/learned``: what was learned from them.

Both take a range of the organisation's days (``from``, ``to``; by default the last seven days
up to today in its time zone, at most 366 days), a grouping (``by``) and a format (``format=csv``
or ``Accept: text/csv`` for a spreadsheet, JSON otherwise). A CSV cell that a spreadsheet would
run as a formula (a driver named ``=HYPERLINK(...)``) is written with a leading ``'``.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any, Final, cast, get_args
from zoneinfo import ZoneInfo

import h3
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from app.auth import READERS
from app.errors import BadParameter, NotFound
from app.http import answer, query_date, resources_of
from schemas.analytics import (
    ChannelMessages,
    DeliveryGroup,
    DeliveryReport,
    DeliveryRow,
    EtaAccuracy,
    LearnedCell,
    LearnedHour,
    LearnedModel,
    PatternReport,
    RouteGroup,
    RouteReport,
    RouteRow,
)
from schemas.ids import OrgId
from schemas.notifications import CHANNELS
from store import learning as learning_store
from store import reports, tenants
from workers.learner import tables_of
from workers.patterns import find_patterns

MAX_DAYS: Final = 366
DEFAULT_DAYS: Final = 7
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


async def _range(request: Request, org_id: OrgId) -> tuple[date, date]:
    """The report's days: as asked, else the last :data:`DEFAULT_DAYS` in the organisation's
    time zone; 400 naming the parameter for a backwards or too long range."""
    day_from, day_to = query_date(request, "from"), query_date(request, "to")
    if day_to is None:
        if day_from is not None:
            day_to = day_from + timedelta(days=DEFAULT_DAYS - 1)
        else:
            async with resources_of(request).pool.connection() as conn:
                org = await tenants.organisation(conn, org_id)
            zone = ZoneInfo(org.time_zone if org is not None else "UTC")
            day_to = datetime.now(zone).date()
    if day_from is None:
        day_from = day_to - timedelta(days=DEFAULT_DAYS - 1)
    if day_from > day_to:
        raise BadParameter("to", f"expected a day on or after {day_from}, got {day_to}")
    if (day_to - day_from).days + 1 > MAX_DAYS:
        raise BadParameter("to", f"expected at most {MAX_DAYS} days from {day_from}, got {day_to}")
    return day_from, day_to


def _choice(request: Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = request.query_params.get(name) or default
    if raw not in allowed:
        raise BadParameter(name, f"expected one of {', '.join(allowed)}, got {raw[:40]!r}")
    return raw


def _wants_csv(request: Request) -> bool:
    if request.query_params.get("format"):
        return _choice(request, "format", ("json", "csv"), "json") == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """``rows`` as CSV with a header of ``columns``; formula-like text neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _cell(row.get(c)) for c in columns])
    return out.getvalue()


def _csv_answer(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{name}.csv"',
            "cache-control": "no-store",  # drivers' names and performance
            "x-content-type-options": "nosniff",
        },
    )


def _by_channel(
    found: list[reports.NotificationTotals],
) -> dict[str, list[ChannelMessages]]:
    """Each group's messages on every channel (zero where it had none), by group key."""
    counts: dict[str, dict[str, tuple[int, int]]] = {}
    for n in found:
        counts.setdefault(n.key, {})[n.channel] = (n.sent, n.failed)
    made: dict[str, list[ChannelMessages]] = {}
    for key, by_channel in counts.items():
        made[key] = []
        for channel in CHANNELS:
            sent, failed = by_channel.get(channel, (0, 0))
            made[key].append(ChannelMessages(channel=channel, sent=sent, failed=failed))
    return made


def _delivery_rows(
    totals: list[reports.DeliveryTotals],
    etas: list[reports.EtaTotals],
    messages: list[reports.NotificationTotals],
    *,
    zones: bool,
) -> list[DeliveryRow]:
    sent = _by_channel(messages)
    none = [ChannelMessages(channel=c, sent=0, failed=0) for c in CHANNELS]
    by_key: dict[str, list[EtaAccuracy]] = {}
    for e in etas:
        by_key.setdefault(e.key, []).append(
            EtaAccuracy(
                horizon_min=e.horizon_min,
                arrivals=e.arrivals,
                mae_s=round(e.mae_s, 1),
                inside_rate=round(e.inside_rate, 4),
            )
        )
    return [
        DeliveryRow(
            key=t.key,
            label=t.label,
            stops=t.stops,
            delivered=t.delivered,
            failed=t.failed,
            first_attempts=t.first_attempts,
            first_attempt_success_rate=reports.ratio(t.first_delivered, t.first_attempts),
            with_window=t.with_window,
            on_time=t.on_time,
            early=t.early,
            late=t.late,
            on_time_rate=reports.ratio(t.on_time, t.with_window),
            mean_lateness_s=_round(t.mean_lateness_s),
            mean_wait_s=_round(t.mean_wait_s),
            mean_service_s=_round(t.mean_service_s),
            arrival_mae_s=_round(t.arrival_mae_s),
            ratings=t.ratings,
            rating_mean=_round(t.rating_mean, 2),
            eta=by_key.get(t.key, []),
            boundary=_outline(t.key) if zones else None,
            notifications=sent.get(t.key, none),
        )
        for t in totals
    ]


def _outline(cell: str) -> list[tuple[float, float]]:
    """An H3 cell's corners, rounded to about a metre."""
    return [(round(lat, 5), round(lon, 5)) for lat, lon in h3.cell_to_boundary(cell)]


def _flat_delivery(row: DeliveryRow) -> dict[str, Any]:
    flat: dict[str, Any] = msgspec.to_builtins(row)
    del flat["eta"], flat["boundary"], flat["notifications"]
    for e in row.eta:
        flat[f"eta_{e.horizon_min}min_arrivals"] = e.arrivals
        flat[f"eta_{e.horizon_min}min_mae_s"] = e.mae_s
        flat[f"eta_{e.horizon_min}min_inside_rate"] = e.inside_rate
    for m in row.notifications:
        flat[f"notifications_{m.channel}_sent"] = m.sent
        flat[f"notifications_{m.channel}_failed"] = m.failed
    return flat


_NESTED: Final = ("eta", "boundary", "notifications")
DELIVERY_COLUMNS: Final = [
    *(f for f in DeliveryRow.__struct_fields__ if f not in _NESTED),
    *(
        f"eta_{h}min_{what}"
        for h in (5, 15, 30, 60)
        for what in ("arrivals", "mae_s", "inside_rate")
    ),
    *(f"notifications_{c}_{what}" for c in CHANNELS for what in ("sent", "failed")),
]


async def deliveries(request: Request) -> Response:
    """``GET /v1/analytics/deliveries``: punctuality, first-attempt success, failures, service
    times, ratings, ETA accuracy and the messages sent per day, driver, carrier, zone or failure
    reason."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    by = cast("DeliveryGroup", _choice(request, "by", get_args(DeliveryGroup), "day"))
    wants_csv = _wants_csv(request)
    day_from, day_to = await _range(request, principal.org_id)
    async with resources.pool.connection() as conn:
        totals = await reports.delivery_totals(conn, principal.org_id, day_from, day_to, by)
        etas = await reports.eta_totals(conn, principal.org_id, day_from, day_to, by)
        messages = await reports.notification_totals(conn, principal.org_id, day_from, day_to, by)
    rows = _delivery_rows(totals, etas, messages, zones=by == "zone" and not wants_csv)
    if wants_csv:
        text = to_csv([_flat_delivery(r) for r in rows], DELIVERY_COLUMNS)
        return _csv_answer(text, f"deliveries-{day_from}-{day_to}-by-{by}")
    return answer(DeliveryReport(from_day=day_from, to_day=day_to, by=by, rows=rows))


def _route_row(t: reports.RouteTotals) -> RouteRow:
    return RouteRow(
        key=t.key,
        label=t.label,
        routes=t.routes,
        stops=t.stops,
        delivered=t.delivered,
        planned_km=round(t.planned_m / 1000, 2),
        driven_km=round(t.driven_m / 1000, 2),
        route_efficiency=reports.ratio(t.planned_m, t.driven_m),
        stops_per_hour=reports.ratio(t.stops * 3600, t.actual_s),
        planned_h=round(t.planned_s / 3600, 2),
        actual_h=round(t.actual_s / 3600, 2),
        idle_h=round(t.idle_s / 3600, 2),
        fuel_l=round(t.fuel_l, 2),
        electricity_kwh=round(t.electricity_kwh, 2),
        co2_kg=round(t.co2_kg, 2),
        gps_jumps=t.gps_jumps,
    )


async def routes(request: Request) -> Response:
    """``GET /v1/analytics/routes``: planned against driven distance, stops per hour, idle time,
    energy and CO₂ per day, driver or carrier."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    by = cast("RouteGroup", _choice(request, "by", get_args(RouteGroup), "day"))
    wants_csv = _wants_csv(request)
    day_from, day_to = await _range(request, principal.org_id)
    async with resources.pool.connection() as conn:
        totals = await reports.route_totals(conn, principal.org_id, day_from, day_to, by)
    rows = [_route_row(t) for t in totals]
    if wants_csv:
        text = to_csv([msgspec.to_builtins(r) for r in rows], list(RouteRow.__struct_fields__))
        return _csv_answer(text, f"routes-{day_from}-{day_to}-by-{by}")
    return answer(RouteReport(from_day=day_from, to_day=day_to, by=by, rows=rows))


async def learned(request: Request) -> Response:
    """``GET /v1/analytics/learned``: what was learned from the organisation's days (the
    model plans use), or 404 when nothing has been learned yet."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    async with resources.pool.connection() as conn:
        model = await learning_store.latest_model(conn, principal.org_id)
    if model is None:
        raise NotFound("nothing learned yet: run `lastmile learn` or wait for the rollups worker")
    speeds, service = tables_of(model)
    cells = []
    if speeds is not None:
        for cell, speed in sorted(speeds.by_cell.items()):
            lat, lon = h3.cell_to_latlng(cell)
            cells.append(
                LearnedCell(
                    cell=cell,
                    lat=round(lat, 6),
                    lon=round(lon, 6),
                    speed_kmh=round(speed * 3.6, 1),
                    samples=speeds.cell_samples.get(cell, 0),
                    boundary=_outline(cell),
                )
            )
    return answer(
        LearnedModel(
            id=model.id,
            learned_at=model.learned_at,
            day_from=model.day_from,
            day_to=model.day_to,
            routes=model.routes,
            city_speed_kmh=None if speeds is None else round(speeds.city_mps * 3.6, 1),
            observed_circuity=None if speeds is None else speeds.observed_circuity,
            route_pace_sd=None
            if speeds is None or speeds.route_pace_sd is None
            else round(speeds.route_pace_sd, 3),
            speed_samples=0 if speeds is None else speeds.samples,
            cells=cells,
            hours=[]
            if speeds is None
            else [
                LearnedHour(hour_of_week=h, speed_kmh=round(v * 3.6, 1))
                for h, v in sorted(speeds.by_hour.items())
            ],
            cell_hours=0 if speeds is None else len(speeds.by_cell_hour),
            service_overall_s=None if service is None else service.overall_s,
            service_by_size={} if service is None else service.by_size,
            service_addresses=0 if service is None else len(service.by_address),
            service_customers=0 if service is None else len(service.by_customer),
            service_samples=0 if service is None else service.samples,
        )
    )


async def patterns(request: Request) -> Response:
    """``GET /v1/analytics/patterns``: zones late day after day, addresses and zones whose first
    attempts keep failing (with why), drivers whose service times stand out."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    day_from, day_to = await _range(request, principal.org_id)
    async with resources.pool.connection() as conn:
        found = await find_patterns(conn, principal.org_id, day_from, day_to)
    return answer(PatternReport(from_day=day_from, to_day=day_to, patterns=found))
