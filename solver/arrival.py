"""Arrival, departure and skip detection for a driver's stops, from one fix at a time.

:func:`detect` is the geofence half of :func:`solver.eta.update`: it takes the tracker state,
the route and a fix, and answers the stops' new statuses and the ``arrived``, ``departed`` and
``out_of_sequence`` events, leaving prediction to :mod:`solver.eta`.

Detection follows the route's order. The **next stop** is the first pending one in the route's
sequence; only it (or a stop skipped before it, rule 5) can be arrived from positions. A stay at
any other stop is reported to dispatchers (``out_of_sequence``) and tells its customer nothing,
because a driver parked at a later stop's address is not serving it until the driver app says
so; once the app reports the stop arrived (:attr:`~schemas.eta.EtaStop.arrived_epoch_s`) it is
served, wherever it is in the sequence. The rules, in the order they are applied to a fix
(fixes less accurate than ``max_accuracy_m`` skip all but the first):

0. **Reports.** A pending or skipped stop the driver app reported arrived is *arrived*, at the
   report's instant (or at the first fix of a stay inside its radius that began before it).
   Stops before it stay pending: the driver may serve them next.
1. **Leg start.** A leg starts where the driver last was within ``arrival_radius_m`` of where
   it began (the first fix, or the stop just left), so time idling there is not driving.
2. **Stays.** A pending or skipped stop remembers the first fix of the driver's current stay
   inside its ``arrival_radius_m``; a fix outside ends the stay.
3. **Departure.** The stop being served (the first arrived one) is *departed* at the first fix
   beyond its ``departure_radius_m`` (at the last fix inside its arrival radius that was not
   nearer to the next stop), or handed over to the next stop once the driver has stayed
   ``dwell_s`` inside that one's arrival radius and either is nearer to it, outside the served
   stop's radius (a few doors on), or has spent the served stop's expected service while
   inside both radii (same building: departed at that fix, and nothing learnt about service).
   A reported stop the driver was never seen inside is left to the driver app to close.
4. **Arrival.** When no stop is being served, the next stop, or a stop skipped before it, whose
   stay has lasted ``dwell_s`` is *arrived*, at the stay's first fix. A stay shorter than
   ``dwell_s`` is not an arrival.
5. **Out of sequence.** When no stop is being served and the driver is not inside the next
   stop's radius, a stay of ``dwell_s`` at any other pending or skipped stop yields
   ``out_of_sequence`` (once per stay), naming the next stop; the leg then teaches nothing.
6. **Pass-by.** The next stop, still pending, is *skipped* when the driver came within
   ``pass_radius_m`` of it since it became next, is now farther than that, and is closer (in a
   straight line) to the following pending stop than to it: the driver drove past and moved on.
   A skipped stop gets no window; dwelling there later revives it (rule 4).

Each of ``arrived`` and ``departed`` fires at most once per stop, because each is a one-way
status change; the state's ``fired`` set records them as well. Learning happens here too: an
arrival after a clean leg (nothing skipped on it) teaches the driver's travel factor, a
departure (or a completion through the app) of an arrived stop the service factor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import msgspec

from schemas.eta import (
    ArrivalDetected,
    DeliveryEvent,
    DepartureDetected,
    DriverPace,
    EtaConfig,
    EtaRoute,
    EtaStop,
    EventKind,
    Fix,
    OutOfSequence,
    StopTrack,
    TrackerState,
)
from schemas.ids import DriverId, OrderId, RouteId, StopId
from schemas.planning import Location
from solver.errors import ProblemError
from solver.geo import euclidean_m, haversine_m
from solver.instance import Window, merge_windows
from solver.matrix import MatrixProvider, trip_durations
from solver.timeline import service_start


@dataclass(slots=True)
class Detection:
    """What :func:`detect` found: the state without its ``stops`` updated, and the new tracks.

    ``state`` has the fix's instant and position, the driver's pace and the current leg;
    ``tracks`` are the stops' tracks after the fix (``state.stops`` and ``state.next_stop_id``
    are still the old ones, for the caller to compare); ``distances_m`` are straight-line
    distances from ``here`` to each stop; ``events`` are the detected ones, in order.
    """

    state: TrackerState
    tracks: list[StopTrack]
    here: Location
    here_accurate: bool
    distances_m: list[float]
    events: list[DeliveryEvent]


@dataclass(slots=True)
class _Leg:
    anchor: Location | None
    start_at: Location | None
    start_epoch_s: int | None
    clean: bool


def distance_m(a: Location, b: Location) -> float:
    """Straight-line metres between two points of the same kind (great circle or planar).

    Raises :class:`~solver.errors.ProblemError` for a geographic and a planar point.
    """
    if a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None:
        return haversine_m(a.lat, a.lon, b.lat, b.lon)
    if a.x_m is not None and a.y_m is not None and b.x_m is not None and b.y_m is not None:
        return euclidean_m(a.x_m, a.y_m, b.x_m, b.y_m)
    raise ProblemError(
        "fix", f"expected the fix and the stops to be both lat/lon or both x_m/y_m, got {a}, {b}"
    )


def stop_windows(stop: EtaStop) -> list[Window]:
    """The stop's time windows as sorted, merged ``(start, end)`` epoch seconds, checked."""
    for window in stop.time_windows:
        if window.end_epoch_s < window.start_epoch_s:
            raise ProblemError(
                f"stop {stop.stop_id}",
                f"expected a time window ending at or after its start {window.start_epoch_s}, "
                f"got end {window.end_epoch_s}",
            )
    return merge_windows([(w.start_epoch_s, w.end_epoch_s) for w in stop.time_windows])


def current_index(tracks: Sequence[StopTrack]) -> int | None:
    """The index of the stop the driver is at or heading for: the one being served, else the
    route's next stop."""
    served = serving_index(tracks)
    return served if served is not None else next_index(tracks)


def serving_index(tracks: Sequence[StopTrack]) -> int | None:
    """The index of the stop being served: the first arrived one, if any."""
    return next((i for i, t in enumerate(tracks) if t.status == "arrived"), None)


def next_index(tracks: Sequence[StopTrack]) -> int | None:
    """The index of the route's next stop: the first pending one in the route's sequence."""
    return next((i for i, t in enumerate(tracks) if t.status == "pending"), None)


def _arrivable(tracks: Sequence[StopTrack]) -> list[int]:
    """The stops a dwell may arrive: skipped stops before the next stop, and the next stop."""
    last = next_index(tracks)
    end = len(tracks) if last is None else last
    found = [i for i in range(end) if tracks[i].status == "skipped"]
    return found if last is None else [*found, last]


@dataclass(slots=True)
class _Work:
    """One fix being applied: what it sees, and what the steps below change."""

    route: EtaRoute
    provider: MatrixProvider
    config: EtaConfig
    now: int
    here: Location
    dist: list[float]
    tracks: list[StopTrack]
    events: list[DeliveryEvent]
    pace: DriverPace
    leg: _Leg
    started: bool


def detect(
    state: TrackerState,
    route: EtaRoute,
    fix: Fix,
    provider: MatrixProvider,
    config: EtaConfig,
) -> Detection:
    """Apply the module's rules to one fix; ``state`` must already be aligned with ``route``."""
    here = fix.location
    accurate = fix.accuracy_m is None or fix.accuracy_m <= config.max_accuracy_m
    w = _Work(
        route=route,
        provider=provider,
        config=config,
        now=fix.epoch_s,
        here=here,
        dist=[distance_m(here, s.location) for s in route.stops],
        tracks=list(state.stops),
        events=[],
        pace=state.pace,
        leg=_Leg(state.leg_anchor, state.leg_start_at, state.leg_start_epoch_s, state.leg_clean),
        started=state.started,
    )
    _take_reports(w)
    if accurate:
        _start_leg(w)
        _track_stays(w)
        _depart(w)
        _arrive(w)
        _flag_out_of_sequence(w)
        _pass_by(w, state.next_stop_id)
    new_state = msgspec.structs.replace(
        state,
        pace=w.pace,
        last_fix_epoch_s=w.now,
        last_position=here,
        started=w.started,
        leg_anchor=w.leg.anchor,
        leg_start_at=w.leg.start_at,
        leg_start_epoch_s=w.leg.start_epoch_s,
        leg_clean=w.leg.clean,
    )
    return Detection(
        state=new_state,
        tracks=w.tracks,
        here=here,
        here_accurate=accurate,
        distances_m=w.dist,
        events=w.events,
    )


def _take_reports(w: _Work) -> None:
    """Rule 0: a stop the driver app reported arrived is being served."""
    for i, stop in enumerate(w.route.stops):
        track = w.tracks[i]
        reported = stop.arrived_epoch_s
        if reported is None or track.status not in ("pending", "skipped"):
            continue
        since = track.inside_since_epoch_s
        arrival = reported if since is None else min(since, reported)
        inside = w.dist[i] <= w.config.arrival_radius_m
        _mark_arrived(w, i, arrival, ready=arrival, inside=inside, reported=True)


def _start_leg(w: _Work) -> None:
    """Rule 1: the leg starts at the last fix near where it began."""
    leg = w.leg
    if leg.anchor is None:
        w.leg = _Leg(w.here, w.here, w.now, True)
    elif distance_m(w.here, leg.anchor) <= w.config.arrival_radius_m:
        leg.start_at, leg.start_epoch_s = w.here, w.now
    else:
        w.started = True


def _track_stays(w: _Work) -> None:
    """Rule 2: open or close each pending or skipped stop's stay inside its radius."""
    for i, track in enumerate(w.tracks):
        if track.status not in ("pending", "skipped"):
            continue
        inside = w.dist[i] <= w.config.arrival_radius_m
        if inside and track.inside_since_epoch_s is None:
            w.tracks[i] = msgspec.structs.replace(
                track, inside_since_epoch_s=w.now, entered_at=w.here
            )
        elif not inside and track.inside_since_epoch_s is not None:
            w.tracks[i] = msgspec.structs.replace(track, inside_since_epoch_s=None, entered_at=None)


def _depart(w: _Work) -> None:
    """Rule 3: the stop being served is left, or handed over to the next one."""
    current = serving_index(w.tracks)
    if current is None:
        return
    track = w.tracks[current]
    config = w.config
    following = next_index(w.tracks)
    inside = w.dist[current] <= config.arrival_radius_m
    nearer_next = following is not None and w.dist[following] < w.dist[current]
    next_dwelled = following is not None and _dwelled(w.tracks[following], w.now, config)
    served = track.service_start_epoch_s is not None and (
        w.now >= track.service_start_epoch_s + w.pace.service_factor * track.service_s
    )
    moved_over = next_dwelled and nearer_next and not inside
    shared_stay = next_dwelled and inside and served
    if inside and not nearer_next and not shared_stay:
        w.tracks[current] = msgspec.structs.replace(
            track, last_inside_epoch_s=w.now, last_inside_at=w.here
        )
        return
    if track.last_inside_epoch_s is None and not inside:
        # Reported arrived but never seen there: the driver app's completion closes it.
        return
    if not (w.dist[current] > config.departure_radius_m or moved_over or shared_stay):
        return
    if shared_stay:
        # Still at the door of both: the expected service is all that says when one ended.
        left, left_at = w.now, w.here
    else:
        left = track.last_inside_epoch_s if track.last_inside_epoch_s is not None else w.now
        left_at = track.last_inside_at or w.here
        # Service ended before the driver drove from the stop to where it was last seen.
        out_s = _drive_s(w.provider, w.route.stops[current].location, left_at, left, w.pace)
        w.pace = learn_service(w.pace, track, left - out_s, config)
    arrived = track.arrived_epoch_s if track.arrived_epoch_s is not None else left
    w.tracks[current] = msgspec.structs.replace(
        track, status="departed", departed_epoch_s=left, fired=_with(track, "departed")
    )
    w.events.append(
        DepartureDetected(
            **event_head(w.route, w.route.stops[current], w.now),
            arrived_epoch_s=arrived,
            departed_epoch_s=left,
        )
    )
    w.leg = _Leg(left_at, left_at, left, True)
    w.started = True


def _arrive(w: _Work) -> None:
    """Rule 4: with no stop being served, the next stop (or one skipped before it) dwelled at
    is arrived."""
    if serving_index(w.tracks) is not None:
        return
    index = next((i for i in _arrivable(w.tracks) if _dwelled(w.tracks[i], w.now, w.config)), None)
    if index is None:
        return
    leg = w.leg
    w.pace = _learn_travel(w.pace, w.tracks, index, leg, w.provider, w.config)
    track = w.tracks[index]
    stop = w.route.stops[index]
    entered = track.inside_since_epoch_s if track.inside_since_epoch_s is not None else w.now
    # A stay that began before the leg did (a stop next to the last one) counts from the leg.
    arrival = entered if leg.start_epoch_s is None else max(entered, leg.start_epoch_s)
    # Service can start once the driver has driven from the radius' edge to the stop.
    in_s = _drive_s(w.provider, track.entered_at or w.here, stop.location, entered, w.pace)
    ready = max(arrival, min(w.now, entered + in_s))
    _mark_arrived(w, index, arrival, ready=ready, inside=True, reported=False)


def _mark_arrived(
    w: _Work, index: int, arrival: int, *, ready: int, inside: bool, reported: bool
) -> None:
    """Serve ``index`` from ``arrival`` (service from ``ready``) and say so."""
    track = w.tracks[index]
    stop = w.route.stops[index]
    w.tracks[index] = msgspec.structs.replace(
        track,
        status="arrived",
        arrived_epoch_s=arrival,
        last_inside_epoch_s=w.now if inside else None,
        last_inside_at=w.here if inside else None,
        service_start_epoch_s=service_start(ready, stop_windows(stop))[0],
        service_s=stop.service_s,
        fired=_with(track, "arrived"),
    )
    w.events.append(
        ArrivalDetected(
            **event_head(w.route, stop, w.now), arrived_epoch_s=arrival, reported=reported
        )
    )
    w.started = True


def _flag_out_of_sequence(w: _Work) -> None:
    """Rule 5: a stay at a stop that is not next is reported to dispatchers, once."""
    expected = next_index(w.tracks)
    if (
        expected is None
        or serving_index(w.tracks) is not None
        or w.dist[expected] <= w.config.arrival_radius_m
    ):
        return
    arrivable = _arrivable(w.tracks)
    for i, track in enumerate(w.tracks):
        since = track.inside_since_epoch_s
        if (
            i in arrivable
            or track.status not in ("pending", "skipped")
            or since is None
            or not _dwelled(track, w.now, w.config)
            or track.flagged_stay_epoch_s == since
        ):
            continue
        w.tracks[i] = msgspec.structs.replace(track, flagged_stay_epoch_s=since)
        # A leg with a stop elsewhere says nothing about the driver's pace on the road.
        w.leg.clean = False
        w.events.append(
            OutOfSequence(
                **event_head(w.route, w.route.stops[i], w.now),
                expected_stop_id=w.route.stops[expected].stop_id,
                expected_order_id=w.route.stops[expected].order_id,
                stay_start_epoch_s=since,
                dwell_s=w.now - since,
            )
        )


def _pass_by(w: _Work, previous_next: StopId | None) -> None:
    """Rule 6: a next stop driven past, for the following one, is skipped."""
    if serving_index(w.tracks) is not None:
        return
    current = next_index(w.tracks)
    if current is None:
        return
    track = w.tracks[current]
    here_m = w.dist[current]
    # The closest approach counts from when the stop became next.
    closest = here_m
    if previous_next == track.stop_id and track.closest_m is not None:
        closest = min(track.closest_m, here_m)
    track = msgspec.structs.replace(track, closest_m=closest)
    following = _following(w.tracks, current)
    if (
        following is not None
        and closest <= w.config.pass_radius_m < here_m
        and w.dist[following] < here_m
    ):
        track = msgspec.structs.replace(
            track, status="skipped", inside_since_epoch_s=None, entered_at=None
        )
        w.leg.clean = False
    w.tracks[current] = track


def mark_completed(
    state: TrackerState, stop_id: StopId, at_epoch_s: int, config: EtaConfig
) -> TrackerState:
    """See :func:`solver.eta.on_stop_completed`, whose rules this applies."""
    index = next((i for i, t in enumerate(state.stops) if t.stop_id == stop_id), None)
    if index is None or state.stops[index].status in ("departed", "completed"):
        return state
    tracks = list(state.stops)
    track = tracks[index]
    pace = state.pace
    if track.status == "arrived":
        pace = learn_service(pace, track, at_epoch_s, config)
    tracks[index] = msgspec.structs.replace(track, status="completed", inside_since_epoch_s=None)
    here = state.last_position
    return msgspec.structs.replace(
        state,
        stops=tracks,
        pace=pace,
        leg_anchor=here,
        leg_start_at=here,
        leg_start_epoch_s=at_epoch_s if here is not None else None,
        leg_clean=True,
    )


def learn_service(
    pace: DriverPace, track: StopTrack, end_epoch_s: int, config: EtaConfig
) -> DriverPace:
    """``pace`` after observing ``track``'s service end at ``end_epoch_s`` (from its start)."""
    if track.service_start_epoch_s is None or track.service_s <= 0:
        return pace
    observed = end_epoch_s - track.service_start_epoch_s
    if observed <= 0:
        return pace
    return msgspec.structs.replace(
        pace,
        service_factor=smoothed_service(
            pace.service_factor, pace.service_stops, observed / track.service_s, config
        ),
        service_stops=pace.service_stops + 1,
    )


def smoothed_service(factor: float, observations: int, ratio: float, config: EtaConfig) -> float:
    """The service ``factor`` moved towards ``ratio`` in log space, robustly.

    The ratio counts as at most ``service_outlier`` times above or below ``factor`` (one long
    delivery says little about the next), and the result stays in ``[pace_min, pace_max]``.
    The weight of the new ratio is ``service_smoothing``, or ``1 / (observations + 2)`` when
    that is larger, so the first few observations count more than the neutral prior.
    """
    weight = max(config.service_smoothing, 1.0 / (observations + 2))
    limit = math.log(config.service_outlier)
    step = min(max(math.log(ratio) - math.log(factor), -limit), limit)
    moved = math.exp(math.log(factor) + weight * step)
    return min(max(moved, config.pace_min), config.pace_max)


def travel_variance(pace: DriverPace, config: EtaConfig) -> float:
    """The variance of the log travel factor: what the legs left, else the prior's."""
    return config.pace_prior_sd**2 if pace.travel_var is None else pace.travel_var


def learned_travel(pace: DriverPace, ratio: float, config: EtaConfig) -> DriverPace:
    """``pace`` after a leg driven in ``ratio`` times the provider's time: one filter step.

    In log space, the factor first drifts (its variance grows by ``pace_drift_sd`` squared),
    then the leg observes it with noise ``pace_leg_sd``: the estimate moves by the gain
    ``var / (var + noise)`` times the leg's residual, counted at most ``pace_outlier_sd``
    standard deviations of that residual either way, and the variance shrinks by the same
    gain. Consistent evidence thus converges within a few legs, however wrong the prior was,
    and an outlier moves the estimate a bounded step.
    """
    var = travel_variance(pace, config) + config.pace_drift_sd**2
    total = var + config.pace_leg_sd**2
    limit = config.pace_outlier_sd * math.sqrt(total)
    residual = min(max(math.log(ratio) - math.log(pace.travel_factor), -limit), limit)
    gain = var / total
    moved = math.exp(math.log(pace.travel_factor) + gain * residual)
    return msgspec.structs.replace(
        pace,
        travel_factor=min(max(moved, config.pace_min), config.pace_max),
        travel_legs=pace.travel_legs + 1,
        travel_var=(1.0 - gain) * var,
    )


def _dwelled(track: StopTrack, now: int, config: EtaConfig) -> bool:
    since = track.inside_since_epoch_s
    return since is not None and now - since >= config.dwell_s


def _following(tracks: Sequence[StopTrack], index: int) -> int | None:
    """The first pending stop after ``index``."""
    return next((j for j in range(index + 1, len(tracks)) if tracks[j].status == "pending"), None)


def _learn_travel(
    pace: DriverPace,
    tracks: Sequence[StopTrack],
    index: int,
    leg: _Leg,
    provider: MatrixProvider,
    config: EtaConfig,
) -> DriverPace:
    """``pace`` after a leg that ends by arriving at ``tracks[index]``, if the leg was clean."""
    track = tracks[index]
    if (
        not leg.clean
        or leg.start_at is None
        or leg.start_epoch_s is None
        or track.entered_at is None
        or track.inside_since_epoch_s is None
        or any(t.status == "pending" for t in tracks[:index])
    ):
        return pace
    (predicted,) = trip_durations(
        provider, [(leg.start_at, track.entered_at)], depart_epoch_s=leg.start_epoch_s
    )
    actual = track.inside_since_epoch_s - leg.start_epoch_s
    if predicted < max(config.min_leg_s, 1) or actual <= 0:
        return pace
    return learned_travel(pace, actual / predicted, config)


def _drive_s(
    provider: MatrixProvider, a: Location, b: Location, at_epoch_s: int, pace: DriverPace
) -> int:
    """The driver's expected driving seconds from ``a`` to ``b`` leaving at ``at_epoch_s``."""
    (seconds,) = trip_durations(provider, [(a, b)], depart_epoch_s=at_epoch_s)
    return round(pace.travel_factor * seconds)


def _with(track: StopTrack, kind: EventKind) -> frozenset[EventKind]:
    return track.fired | {kind}


class EventHead(TypedDict):
    """The fields every delivery event starts with."""

    driver_id: DriverId
    route_id: RouteId
    route_version: int
    stop_id: StopId
    order_id: OrderId
    at_epoch_s: int


def event_head(route: EtaRoute, stop: EtaStop, now: int) -> EventHead:
    """The common fields of an event about ``stop`` revealed at ``now``."""
    return {
        "driver_id": route.driver_id,
        "route_id": route.route_id,
        "route_version": route.version,
        "stop_id": stop.stop_id,
        "order_id": stop.order_id,
        "at_epoch_s": now,
    }
