"""The dispatcher's live feed (``/v1/live/ws``): a snapshot, then positions and events.

Server → client only. ``snapshot`` comes first on every connection (on a large day the rest of
its routes follow at once in ``routes`` messages: no message grows with the day); then
``positions`` (the
newest position of each driver that moved since the last such message — coalesced, so a slow
screen skips intermediate positions), ``windows`` (moved arrival windows, coalesced per stop the
same way) and ``event`` (every other domain event of the organisation, in order, with the
``id`` of its entry on the organisation's events stream, which a reconnecting screen passes as
``?since=`` to replay what it missed; the snapshot's ``replay`` says whether it was).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from schemas.eta import ArrivalWindow, EtaChanged
from schemas.events import Event
from schemas.ping import LivePosition
from schemas.route import RouteView

ReplayOutcome = Literal["follows", "too_old", "too_many"]
"""What became of a reconnecting screen's ``?since=``: see :attr:`Snapshot.replay`."""


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="snapshot"):
    """Everything on the map now: every driver's latest position, today's routes, and the
    newest arrival window of each open stop (``late_s > 0`` marks a stop running late)."""

    as_of: datetime
    day: str = ""
    """The routes' day (``YYYY-MM-DD``): today in ``time_zone`` unless ``?day=`` chose one."""
    time_zone: str = "UTC"
    """The organisation's IANA time zone, for showing times."""
    drivers: list[LivePosition]
    routes: list[RouteView]
    """The day's routes, or on a large day the first of them (see ``following``)."""
    windows: list[ArrivalWindow] = []
    following: list[int] = []
    """Ids of the day's other routes, which come next in ``routes`` messages, each holding at
    most 500 stops (the ``snapshot_part_stops`` setting; a longer route alone), before anything
    else; the snapshot is whole after the one marked ``last``. Empty when ``routes`` holds them
    all."""
    replay: ReplayOutcome | None = None
    """What became of ``?since=``: ``None`` when none was given; ``"follows"`` when every event
    after it comes next, as ``event`` messages (possibly none); ``"too_old"`` when some of them
    are no longer kept, ``"too_many"`` when there are more than a screen is sent at once — then
    none are replayed, and this snapshot stands in for them."""


class RoutesPart(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="routes"):
    """More of the snapshot's routes (:attr:`Snapshot.following`), with the newest arrival
    window of each of their open stops."""

    routes: list[RouteView]
    windows: list[ArrivalWindow] = []
    last: bool
    """The snapshot's last part: the day is whole."""


class Positions(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="positions"):
    """Drivers that moved: the newest position of each."""

    drivers: list[LivePosition]


class EventMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="event"):
    """One domain event, with its entry id on the organisation's events stream."""

    id: str
    event: Event


class WindowChanges(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="windows"):
    """Stops whose arrival window moved: the newest ``eta_changed`` of each since the last such
    message. Coalesced per stop like positions, so a slow screen skips intermediate windows
    instead of falling behind on them; they carry no stream id (a reconnecting screen gets the
    current windows in its snapshot, and ``?since=`` does not replay them)."""

    changes: list[EtaChanged]


LiveMessage = Snapshot | RoutesPart | Positions | EventMessage | WindowChanges
