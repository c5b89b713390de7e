"""``POST /v1/drivers/{driver_id}/devices/qr``: a new device token as a sign-in QR code.

A dispatcher shows the code on a screen and the driver scans it with the phone's camera: the
phone opens the driver app already signed in. The code holds ``<base>/driver#token=lmd_…``,
where ``<base>`` is ``LASTMILE_PUBLIC_URL`` or else the address this request came to (the one
the dispatcher's screen reached, so usually one the phones on that network reach too).
"""

from __future__ import annotations

import io

import msgspec
import segno
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.api.fleet import new_device
from app.auth import FLEET_WRITERS, token_prefix
from app.http import decode, encode, path_id, request_body, resources_of
from app.idempotency import Answer, run_create
from schemas.delivery import DeviceIn
from schemas.driver_qr import DeviceSignIn
from schemas.ids import DriverId

QR_SCALE = 8
"""Pixels per module: a version-5 code (a token URL) is about 300 px wide, easy to scan."""


def sign_in_url(base_url: str, token: str) -> str:
    """The driver app's address with ``token`` in the fragment (never sent to any server)."""
    return f"{base_url.rstrip('/')}/driver#token={token}"


def qr_svg(text: str) -> str:
    """A standalone SVG document of a QR code of ``text`` (error correction M)."""
    code = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind="svg", scale=QR_SCALE, border=4, xmldecl=False, title="Driver sign-in")
    return out.getvalue().decode()


async def device_qr(request: Request) -> Response:
    """Register a device for the driver and answer its sign-in URL and QR code (shown once)."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    driver_id = DriverId(path_id(request, "driver_id"))
    body = await request_body(request)
    data = decode(body, request.headers.get("content-type"), DeviceIn, empty_ok=True)
    base = resources.settings.public_url or str(request.base_url)

    async def command(conn: AsyncConnection) -> Answer:
        device_id, token = await new_device(conn, principal.org_id, driver_id, data.name)
        url = sign_in_url(base, token)
        shown = DeviceSignIn(
            device_id=device_id,
            driver_id=driver_id,
            name=data.name,
            token_prefix=token_prefix(token),
            url=url,
            svg=qr_svg(url),
        )
        replay = msgspec.structs.replace(shown, url=None, svg=None)
        return Answer(201, encode(shown), encode(replay))

    response = await run_create(request, principal, body, command)
    response.headers["cache-control"] = "no-store"  # it holds a credential
    return response
