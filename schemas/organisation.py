"""An organisation's own settings: ``/v1/settings/organisation``."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import UNSET, Meta, UnsetType

from schemas.delivery import Email, Language, Name, ServiceS
from schemas.ids import OrgId

TimeZone = Annotated[
    str, Meta(min_length=1, max_length=64, description="an IANA time zone such as Europe/Berlin")
]
MAX_SUMMARY_EMAILS: Final = 20
SummaryEmails = Annotated[list[Email], Meta(max_length=MAX_SUMMARY_EMAILS)]


class Organisation(msgspec.Struct, frozen=True, kw_only=True):
    """The organisation's settings.

    ``time_zone`` is where its days begin and end and how every page, message and email shows
    times; ``locale`` the language and formats of what its customers read where an order names
    no language (the notification rules may name another); ``default_service_s`` the time at
    the stop of an order that names none, applied when the order is stored;
    ``auto_resequence`` re-orders a driver's remaining stops by itself when the ETA worker finds
    one running late, where a better order exists (at most every ten minutes per route);
    ``summary_emails`` where the weekly summary goes by email (Monday morning in its time zone,
    when the deployment has an SMTP relay), none: no summary."""

    id: OrgId
    name: Name
    time_zone: TimeZone
    locale: Language
    default_service_s: ServiceS
    auto_resequence: bool = False
    summary_emails: SummaryEmails = msgspec.field(default_factory=list)


class OrganisationPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PATCH /v1/settings/organisation``: fields left out are unchanged."""

    name: Name | UnsetType = UNSET
    time_zone: TimeZone | UnsetType = UNSET
    locale: Language | UnsetType = UNSET
    default_service_s: ServiceS | UnsetType = UNSET
    auto_resequence: bool | UnsetType = UNSET
    summary_emails: SummaryEmails | UnsetType = UNSET
    """The whole list (duplicates dropped); ``[]`` turns the weekly summary off."""
