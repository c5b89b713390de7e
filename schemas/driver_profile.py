"""``GET /v1/driver/me``: who the calling device belongs to, and the zone its times are read in."""

from __future__ import annotations

import msgspec

from schemas.ids import DriverId


class DriverProfile(msgspec.Struct, frozen=True, kw_only=True):
    """The calling device's driver: name, and the organisation's IANA time zone (the driver
    app shows every time in it, as the dispatcher's map does)."""

    driver_id: DriverId
    name: str
    time_zone: str
