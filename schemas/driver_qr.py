"""The driver app's sign-in code: a new device token as a URL and as a QR code of it."""

from __future__ import annotations

import msgspec

from schemas.ids import DeviceId, DriverId


class DeviceSignIn(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/drivers/{id}/devices/qr``: a new device and how its phone signs in.

    ``url`` is the driver app with the token in its fragment (``…/driver#token=lmd_…``), which
    browsers never send to a server; ``svg`` is a QR code of ``url`` for the phone's camera.
    Both carry the secret, so both are shown in this answer only: a replay of the same
    idempotent request answers ``null`` for them.
    """

    device_id: DeviceId
    driver_id: DriverId
    name: str
    token_prefix: str
    url: str | None
    svg: str | None
