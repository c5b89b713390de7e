"""Replaying an organisation's events to a reconnecting screen, on a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from app.settings import Settings
from realtime.events import emit, replay
from realtime.streams import StreamNames, parse_entry_id
from schemas.eta import ArrivalWindow, EtaChanged
from schemas.events import DeliveryUpdate, Event, OrderCancelled
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from tests.helpers import stream_entries

OURS, THEIRS = OrgId(1), OrgId(2)


@pytest.fixture
def names(settings: Settings) -> StreamNames:
    """The stream names of this test's Redis prefix."""
    return StreamNames(prefix=settings.redis_prefix, shards=settings.ping_shards)


def cancelled(org_id: OrgId, order_id: int) -> OrderCancelled:
    """An order of ``org_id`` was cancelled: the simplest event to tell apart by its order."""
    return OrderCancelled(org_id=org_id, at=datetime.now(UTC), order_id=OrderId(order_id))


def moved_window(org_id: OrgId, stop_id: int) -> DeliveryUpdate:
    """The ETA worker's ``eta_changed`` for ``stop_id``."""
    window = ArrivalWindow(
        stop_id=StopId(stop_id),
        order_id=OrderId(stop_id),
        likely_epoch_s=1_900_000_000,
        lower_epoch_s=1_899_999_700,
        upper_epoch_s=1_900_000_600,
        computed_epoch_s=1_899_996_400,
    )
    detail = EtaChanged(
        driver_id=DriverId(1),
        route_id=RouteId(1),
        route_version=1,
        stop_id=StopId(stop_id),
        order_id=OrderId(stop_id),
        at_epoch_s=window.computed_epoch_s,
        previous=window,
        window=window,
    )
    return DeliveryUpdate(org_id=org_id, at=datetime.now(UTC), detail=detail)


async def last_id(redis: Redis, names: StreamNames, org_id: OrgId) -> tuple[int, int]:
    """The id of the newest entry on ``org_id``'s own events stream."""
    [(entry_id, _)] = stream_entries(await redis.xrevrange(names.org_events(org_id), count=1))
    return parse_entry_id(entry_id.decode())


def order_ids(events: list[tuple[str, Event]]) -> list[int]:
    """The cancelled orders among replayed events, in replay order."""
    return [event.order_id for _, event in events if isinstance(event, OrderCancelled)]


async def test_a_replay_behind_many_other_organisations_events_misses_none_of_ours(
    redis: Redis, names: StreamNames
) -> None:
    """After 12,000 events of another organisation interleaved with ten of ours, all ten replay."""
    await emit(redis, names, cancelled(OURS, 0))
    since = await last_id(redis, names, OURS)
    for batch in range(10):
        theirs = [cancelled(THEIRS, batch * 1_200 + n) for n in range(1_200)]
        await emit(redis, names, *theirs[:600], cancelled(OURS, batch + 1), *theirs[600:])
    assert await redis.xlen(names.events) == 12_011
    missed = await replay(redis, names, OURS, since)
    assert missed.outcome == "follows"
    assert order_ids(missed.events) == list(range(1, 11))
    assert [parse_entry_id(i) for i, _ in missed.events] == sorted(
        parse_entry_id(i) for i, _ in missed.events
    )


async def test_a_screen_that_saw_the_newest_event_is_owed_nothing(
    redis: Redis, names: StreamNames
) -> None:
    """Replaying after the newest event follows with no events."""
    await emit(redis, names, cancelled(OURS, 1), cancelled(OURS, 2))
    missed = await replay(redis, names, OURS, await last_id(redis, names, OURS))
    assert (missed.outcome, missed.events) == ("follows", [])


async def test_moved_windows_stay_off_the_organisations_stream(
    redis: Redis, names: StreamNames
) -> None:
    """Moved windows reach the shared stream only, so a replay neither sends nor counts them."""
    await emit(redis, names, cancelled(OURS, 1))
    since = await last_id(redis, names, OURS)
    await emit(redis, names, *(moved_window(OURS, stop) for stop in range(50)), cancelled(OURS, 2))
    assert await redis.xlen(names.events) == 52
    missed = await replay(redis, names, OURS, since, limit=1)
    assert (missed.outcome, order_ids(missed.events)) == ("follows", [2])


async def test_an_id_older_than_the_kept_events_is_too_old(
    redis: Redis, names: StreamNames
) -> None:
    """Once the events after a screen's last one may have been trimmed, none are replayed."""
    await emit(redis, names, *(cancelled(OURS, n) for n in range(5)))
    [(first, _)] = stream_entries(await redis.xrange(names.org_events(OURS), count=1))
    await redis.xtrim(names.org_events(OURS), maxlen=2, approximate=False)
    missed = await replay(redis, names, OURS, parse_entry_id(first.decode()))
    assert (missed.outcome, missed.events) == ("too_old", [])


async def test_an_organisation_without_kept_events_cannot_vouch_for_the_gap(
    redis: Redis, names: StreamNames
) -> None:
    """With no stream of the organisation's own, a resume id is too old, never silently fine."""
    missed = await replay(redis, names, OURS, (1_700_000_000_000, 0))
    assert (missed.outcome, missed.events) == ("too_old", [])


async def test_more_missed_events_than_the_bound_are_none_replayed(
    redis: Redis, names: StreamNames
) -> None:
    """Past ``limit`` missed events, the replay is too many and sends none."""
    await emit(redis, names, cancelled(OURS, 0))
    since = await last_id(redis, names, OURS)
    await emit(redis, names, *(cancelled(OURS, n) for n in range(1, 5)))
    assert (await replay(redis, names, OURS, since, limit=4)).outcome == "follows"
    missed = await replay(redis, names, OURS, since, limit=3)
    assert (missed.outcome, missed.events) == ("too_many", [])


@pytest.mark.parametrize("raw", ["0-0", "1700000000000-5", "18446744073709551615-0"])
def test_stream_ids_parse_in_stream_order(raw: str) -> None:
    """``<ms>-<seq>`` parses to a pair of the two numbers."""
    ms, seq = raw.split("-")
    assert parse_entry_id(raw) == (int(ms), int(seq))


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "nope",
        "1700000000000",
        "1-",
        "-1",
        "1-2-3",
        "+1-2",
        "1 -2",
        "１-2",
        "18446744073709551616-0",
    ],
)
def test_anything_but_a_stream_id_is_refused_with_what_came(raw: str) -> None:
    """A malformed id raises ValueError naming the expected form and the id that came."""
    with pytest.raises(ValueError, match=r"<ms>-<seq>, got") as refused:
        parse_entry_id(raw)
    assert repr(raw[:40]) in str(refused.value)
