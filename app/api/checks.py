"""Rules that orders and shifts share: a plausible day, time windows near it, amounts in known
dimensions.

Each check raises :class:`~app.errors.InvalidField` naming the field at fault.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.errors import InvalidField
from schemas.reasons import iso

DAY_SLACK: Final = timedelta(hours=12)
"""How far outside its calendar day a window may reach (night work, late deliveries)."""

FIRST_DAY: Final = date(2000, 1, 1)
LAST_DAY: Final = date(2999, 12, 31)
"""The days a delivery day may be. Far wider than any delivery, and narrow enough that every
instant near one (its zone, :data:`DAY_SLACK`, the planner's epoch seconds) is a positive
number of seconds that ``datetime`` can still shift: year 1 or 9999 cannot."""


def zone(name: str) -> ZoneInfo:
    """The organisation's time zone; UTC when the stored name is unknown to this system."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def check_day(day: date, field: str = "day") -> None:
    """Raise :class:`InvalidField` naming ``field`` unless ``day`` is in
    [:data:`FIRST_DAY`, :data:`LAST_DAY`]."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidField(field, f"expected a day from {FIRST_DAY} to {LAST_DAY}, got {day}")


def check_window(start: datetime, end: datetime, field: str, day: date, timezone: str) -> None:
    """Raise :class:`InvalidField` unless ``start < end`` and both lie near ``day``.

    Near means within the day in the organisation's time zone, widened by :data:`DAY_SLACK`
    on each side. ``field`` names the window (``time_windows[1]``); a ``day`` that
    :func:`check_day` refuses is refused naming ``day``.
    """
    check_day(day)
    if not start < end:
        raise InvalidField(
            f"{field}.end", f"expected a time after start {iso(start)}, got {iso(end)}"
        )
    midnight = datetime.combine(day, time(), zone(timezone))
    earliest, latest = midnight - DAY_SLACK, midnight + timedelta(days=1) + DAY_SLACK
    for name, value in (("start", start), ("end", end)):
        if not earliest <= value <= latest:
            raise InvalidField(
                f"{field}.{name}",
                f"expected a time within 12 hours of the day {day} ({timezone}), between"
                f" {iso(earliest)} and {iso(latest)}, got {iso(value)}",
            )


def check_amounts(amounts: dict[str, int], field: str, dimensions: list[str]) -> None:
    """Raise :class:`InvalidField` naming the first key of ``amounts`` not in ``dimensions``."""
    for name in amounts:
        if name not in dimensions:
            raise InvalidField(
                f"{field}.{name}",
                f"unknown dimension; expected one of {', '.join(dimensions) or '(none)'}",
            )
