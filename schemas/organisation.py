"""An organisation's own settings: ``/v1/settings/organisation``."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from schemas.delivery import Language, Name, ServiceS
from schemas.ids import OrgId

TimeZone = Annotated[
    str, Meta(min_length=1, max_length=64, description="an IANA time zone such as Europe/Berlin")
]


class Organisation(msgspec.Struct, frozen=True, kw_only=True):
    """The organisation's settings.

    ``time_zone`` is where its days begin and end and how every page, message and email shows
    times; ``locale`` the language and formats of what its customers read where an order names
    no language (the notification rules may name another); ``default_service_s`` the time at
    the stop of an order that names none, applied when the order is stored;
    ``auto_resequence`` re-orders a driver's remaining stops by itself when the ETA worker finds
    one running late, where a better order exists (at most every ten minutes per route)."""

    id: OrgId
    name: Name
    time_zone: TimeZone
    locale: Language
    default_service_s: ServiceS
    auto_resequence: bool = False


class OrganisationPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PATCH /v1/settings/organisation``: fields left out are unchanged."""

    name: Name | UnsetType = UNSET
    time_zone: TimeZone | UnsetType = UNSET
    locale: Language | UnsetType = UNSET
    default_service_s: ServiceS | UnsetType = UNSET
    auto_resequence: bool | UnsetType = UNSET
