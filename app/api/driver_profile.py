"""``GET /v1/driver/me``: the calling device's driver, for the driver app's header and clock."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.errors import NotFound
from app.http import answer, resources_of
from store.driver_profile import driver_profile


async def driver_me(request: Request) -> Response:
    """The device's driver (name) and the organisation's time zone."""
    resources = resources_of(request)
    device = await resources.auth.require_device(request)
    async with resources.pool.connection() as conn:
        profile = await driver_profile(conn, device.org_id, device.driver_id)
    if profile is None:
        raise NotFound(f"no driver {device.driver_id}")
    return answer(profile)
