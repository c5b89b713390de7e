"""Patterns worth acting on: what recurs in an organisation's facts over a range of days.

:func:`find_patterns` reads the facts through :mod:`store.reports` and judges them: zones late
day after day, addresses and zones whose first attempts keep failing (with why), drivers whose
service times stand out from the fleet's. ``GET /v1/analytics/patterns`` answers with it, and
the weekly summary (:mod:`workers.summary`, run beside the rollups worker) lists the first of
them; it lives here rather than in ``app/`` because workers may not import the app.
"""

from __future__ import annotations

import statistics
from datetime import date
from typing import Any, Final

from psycopg import AsyncConnection

from schemas.analytics import Pattern, PatternKind
from schemas.ids import OrgId
from store import reports

LATE_ZONE_MIN_DAYS: Final = 3
"""A zone runs late "day after day" when it has late stops on at least this many days of the
range, and on at least half the days it had stops."""
FAILING_ADDRESS_MIN: Final = 2
FAILING_ZONE_MIN: Final = 3
FAILING_ZONE_FACTOR: Final = 2.0
"""A zone's first attempts fail "repeatedly" when at least this many times the organisation's
rate (and at least :data:`FAILING_ZONE_MIN` of them)."""
SERVICE_MIN_STOPS: Final = 20
SLOW_FACTOR: Final = 1.5
FAST_FACTOR: Final = 0.6
"""A driver's median service time stands out at this many times the fleet's (the median of the
drivers' medians), over at least :data:`SERVICE_MIN_STOPS` stops."""


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


def _reasons(codes: list[str]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for code in codes:
        counted[code] = counted.get(code, 0) + 1
    return dict(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))


def _failing(kind: PatternKind, place: reports.FailingPlace, detail: str) -> Pattern:
    """A place whose first attempts keep failing, with how often and why."""
    reasons = _reasons(place.reasons)
    why = ", ".join(f"{code} {n}" for code, n in reasons.items())
    return Pattern(
        kind=kind,
        key=place.key,
        label=place.label,
        zone=place.zone,
        summary=f"{place.failed} of {place.first_attempts} first attempts failed{detail}: {why}",
        days=place.days,
        failed=place.failed,
        first_attempts=place.first_attempts,
        reasons=reasons,
    )


def _late_zone(z: reports.LateZone) -> Pattern:
    return Pattern(
        kind="late_zone",
        key=z.zone,
        label=z.zone,
        zone=z.zone,
        summary=f"late on {z.late_days} of {z.days} days: {z.late} of"
        f" {z.with_window} stops with a window, {_minutes(z.mean_lateness_s)}"
        " late on average",
        days=z.late_days,
        stops=z.with_window,
        late=z.late,
        mean_lateness_s=round(z.mean_lateness_s, 1),
    )


def _service(drivers: list[reports.DriverService]) -> list[Pattern]:
    """Drivers whose median service time stands out from the fleet's."""
    enough = [d for d in drivers if d.stops >= SERVICE_MIN_STOPS]
    if len(enough) < 2:
        return []
    found = []
    fleet = statistics.median(d.median_service_s for d in enough)
    for d in enough:
        ratio = d.median_service_s / fleet if fleet > 0 else 1.0
        if FAST_FACTOR < ratio < SLOW_FACTOR:
            continue
        found.append(
            Pattern(
                kind="slow_service" if ratio >= SLOW_FACTOR else "fast_service",
                key=str(d.driver_id),
                label=d.label,
                summary=f"median service {d.median_service_s:.0f} s over {d.stops} stops,"
                f" {ratio:.1f} times the fleet's {fleet:.0f} s",
                stops=d.stops,
                median_service_s=round(d.median_service_s, 1),
                fleet_median_service_s=round(fleet, 1),
            )
        )
    return found


async def find_patterns(
    conn: AsyncConnection[Any], org: OrgId, day_from: date, day_to: date
) -> list[Pattern]:
    """The patterns of the organisation's days ``day_from`` to ``day_to``: late zones, failing
    addresses, failing zones, then drivers' service times; most telling first within each
    kind. Five queries."""
    found = [
        _late_zone(z)
        for z in await reports.late_zones(conn, org, day_from, day_to, LATE_ZONE_MIN_DAYS)
        if z.late_days * 2 >= z.days
    ]
    for a in await reports.failing_addresses(conn, org, day_from, day_to, FAILING_ADDRESS_MIN):
        found.append(_failing("failing_address", a, f" on {a.days} days"))
    totals = await reports.delivery_totals(conn, org, day_from, day_to, "day")
    first = sum(t.first_attempts for t in totals)
    failed_first = first - sum(t.first_delivered for t in totals)
    rate = failed_first / first if first else 0.0
    for fz in await reports.failing_zones(conn, org, day_from, day_to, FAILING_ZONE_MIN):
        if fz.failed < FAILING_ZONE_FACTOR * rate * fz.first_attempts:
            continue
        share = f" ({fz.failed / fz.first_attempts:.0%}; the organisation's {rate:.0%})"
        found.append(_failing("failing_zone", fz, share))
    return found + _service(await reports.driver_service(conn, org, day_from, day_to))
