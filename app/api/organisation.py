"""``GET|PATCH /v1/settings/organisation``: the organisation's name, time zone, locale,
default service time and weekly summary recipients (readers read; admins change).

A new time zone applies from the next request on: days not yet planned begin and end in it,
and pages, messages and emails show times in it. Stored instants (windows, arrivals) do not
move; they are shown in the new zone.
"""

from __future__ import annotations

import functools
import zoneinfo
from email.headerregistry import Address
from email.message import EmailMessage

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from app.auth import ADMINS, READERS
from app.errors import InvalidField, NotFound
from app.http import answer, decode, request_body, resources_of
from schemas.organisation import OrganisationPatch
from store import tenants
from workers import messages


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_time_zone(name: str, field: str = "time_zone") -> None:
    """400 naming ``field`` unless ``name`` is an IANA zone this machine knows."""
    if name not in _zones():
        raise InvalidField(field, f"expected an IANA time zone such as Europe/Berlin, got {name!r}")


def check_emails(addresses: list[str], field: str) -> list[str]:
    """``addresses`` without duplicates (any case), in order; 400 naming ``field[i]`` for one
    that is not a single deliverable address (``name@example.com``, a domain with a dot)."""
    kept: dict[str, str] = {}
    for n, text in enumerate(addresses):
        message = EmailMessage()
        try:
            message["To"] = text
            found: tuple[Address, ...] = message["To"].addresses
        except (ValueError, IndexError):
            found = ()
        if len(found) != 1 or found[0].addr_spec != text.strip() or "." not in found[0].domain:
            raise InvalidField(
                f"{field}[{n}]", f"expected an address like name@example.com, got {text!r}"
            )
        kept.setdefault(text.strip().lower(), text.strip())
    return list(kept.values())


async def organisation(request: Request) -> Response:
    """Read the settings (any reader) or change some of them (admins)."""
    resources = resources_of(request)
    writing = request.method == "PATCH"
    principal = await resources.auth.require_api_key(request, ADMINS if writing else READERS)
    patch = None
    if writing:
        body = await request_body(request)
        patch = decode(body, request.headers.get("content-type"), OrganisationPatch)
        if not isinstance(patch.time_zone, msgspec.UnsetType):
            check_time_zone(patch.time_zone)
        if not isinstance(patch.locale, msgspec.UnsetType) and not messages.known_language(
            patch.locale
        ):
            raise InvalidField(
                "locale", f"expected a locale such as en-GB or de, got {patch.locale!r}"
            )
        if not isinstance(patch.summary_emails, msgspec.UnsetType):
            patch = msgspec.structs.replace(
                patch, summary_emails=check_emails(patch.summary_emails, "summary_emails")
            )
    async with resources.pool.connection() as conn, conn.transaction():
        current = await tenants.organisation(conn, principal.org_id)
        if current is None:
            raise NotFound("this organisation no longer exists")
        if patch is None:
            return answer(current)
        changes = {
            name: value
            for name in OrganisationPatch.__struct_fields__
            if not isinstance(value := getattr(patch, name), msgspec.UnsetType)
        }
        stored = await tenants.update_organisation(
            conn, principal.org_id, msgspec.structs.replace(current, **changes)
        )
    if stored is None:
        raise NotFound("this organisation no longer exists")
    return answer(stored)
