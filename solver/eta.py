"""Live arrival windows for a driver's remaining stops, and the events worth telling people.

The ETA worker calls :func:`update` on every fix of a driver on a dispatched route, keeping the
returned :class:`~schemas.eta.TrackerState`; :func:`on_stop_completed` and
:func:`on_route_changed` fold in what the driver app and the dispatchers did, and
:func:`refresh` recomputes after them without waiting for the next fix. Everything is pure and
deterministic: same inputs, same answers; nothing is sent or stored here. Detection (which stop
is arrived, departed, skipped) lives in :mod:`solver.arrival`; this module predicts and decides
what to publish.

**The prediction.** From the driver's position at the fix instant (or from the stop being
served, once its expected service is over), each remaining stop is reached after the provider's
driving time times the driver's learned ``travel_factor`` (on the current leg, blended with
how that leg has gone so far); service starts at arrival or when the customer's next window
opens, and lasts the planned ``service_s`` times the learned ``service_factor``. That is
:func:`solver.timeline.retime`'s rule, with the driver's pace.

**The window.** Around the likely arrival, each side's offset is ``z`` standard deviations of
an error combining a base (``spread_base_s``), an independent share of every leg's driving
(``spread_leg_ratio``), one share of all the driving ahead for the pace not yet learned
(the travel factor's standard deviation, shrinking as legs are observed) and a share of each
service ahead
(``spread_service_ratio``), with ``z`` from :attr:`~schemas.eta.EtaConfig.window_quantiles`;
the late side adds ``spread_delay_ratio`` of the driving ahead (delays only add up). Waiting
for a window absorbs lateness: what a side carries past a stop is what is left of it after
the slack, and an early arrival waits too.

**What is published.** A stop's window is returned when it was never published or when its
likely arrival or a bound moved by more than ``publish_threshold_s`` against the last one
returned; each such move after the first also yields an ``eta_changed`` event. The other
events fire once per stop, whatever later fixes repeat (the state records what fired):
``en_route`` when the stop becomes next, ``approaching`` when the next stop is near, and
``running_late`` when the likely arrival first passes the end of the customer's last time
window (a window whose upper bound alone passes it is at risk, ``late_s``, not late: hours
ahead, at the start of a day, most upper bounds do). ``arrived``, ``departed`` and
``out_of_sequence`` come from :mod:`solver.arrival`. "Next" follows the route's order: the
first pending stop in sequence (while no stop is being served), never a later stop the driver
happens to wait at.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import msgspec

from schemas.eta import (
    Approaching,
    ArrivalWindow,
    DeliveryEvent,
    DriverPace,
    EnRoute,
    EtaChanged,
    EtaConfig,
    EtaRoute,
    EtaStop,
    Fix,
    RunningLate,
    StopTrack,
    TrackerState,
)
from schemas.ids import StopId
from schemas.ping import Ping
from schemas.planning import Location, PlanningTimeWindow
from schemas.route import RouteView
from solver.arrival import (
    Detection,
    current_index,
    detect,
    distance_m,
    event_head,
    mark_completed,
    stop_windows,
    travel_variance,
)
from solver.instance import Window
from solver.matrix import MatrixProvider, trip_durations
from solver.timeline import service_start

DEFAULT_CONFIG = EtaConfig()


class EtaUpdate(NamedTuple):
    """What one call answers: the state to keep, the windows to publish, the events to deliver.

    ``windows`` and ``events`` are in route order (events of one stop in the order they
    happened); both may be empty.
    """

    state: TrackerState
    windows: list[ArrivalWindow]
    events: list[DeliveryEvent]


def fix_of(ping: Ping) -> Fix:
    """The ping as a fix: its instant (whole seconds, rounded down), position and accuracy."""
    return Fix(
        epoch_s=math.floor(ping.time.timestamp()),
        location=Location(lat=ping.lat, lon=ping.lon),
        accuracy_m=ping.accuracy_m,
    )


def route_from_view(view: RouteView) -> EtaRoute:
    """The route's open stops (``pending`` or ``arrived``), in sequence, for the ETA model.

    A stop the driver app marked arrived carries the instant (``arrived_epoch_s``): the model
    serves it from then on, even out of the route's order.
    """
    open_stops = sorted(
        (s for s in view.stops if s.status in ("pending", "arrived")), key=lambda s: s.seq
    )
    return EtaRoute(
        driver_id=view.driver_id,
        route_id=view.id,
        version=view.version,
        start_epoch_s=math.floor(view.planned_start.timestamp()),
        stops=[
            EtaStop(
                stop_id=s.id,
                order_id=s.order_id,
                location=Location(lat=s.lat, lon=s.lon),
                time_windows=[
                    PlanningTimeWindow(
                        start_epoch_s=math.floor(w.start.timestamp()),
                        end_epoch_s=math.floor(w.end.timestamp()),
                    )
                    for w in s.windows
                ],
                service_s=s.service_s,
                planned_arrival_epoch_s=math.floor(s.planned_arrival.timestamp()),
                arrived_epoch_s=(
                    math.floor(s.arrived_at.timestamp())
                    if s.status == "arrived" and s.arrived_at is not None
                    else None
                ),
            )
            for s in open_stops
        ],
    )


def start_tracking(route: EtaRoute, *, pace: DriverPace | None = None) -> TrackerState:
    """A fresh state for ``route``: every stop pending, nothing fired, no fix seen.

    ``pace`` seeds the driver's factors (say, from earlier days); the default is neutral.
    """
    return TrackerState(
        driver_id=route.driver_id,
        route_id=route.route_id,
        route_version=route.version,
        stops=[StopTrack(stop_id=s.stop_id) for s in route.stops],
        pace=pace if pace is not None else DriverPace(),
    )


def on_route_changed(state: TrackerState, new_route: EtaRoute) -> TrackerState:
    """Carry ``state`` over to ``new_route`` (a new version, or another route of the driver).

    Stops the new route still holds keep everything (status, dwell, fired events, windows),
    in the new order; new stops start pending; stops it no longer holds are forgotten. The
    driver's pace, position and current leg are kept. Raises :class:`ValueError` when the route
    belongs to another driver.
    """
    if new_route.driver_id != state.driver_id:
        raise ValueError(
            f"expected a route of driver {state.driver_id}, got driver {new_route.driver_id}"
        )
    known = {t.stop_id: t for t in state.stops}
    return msgspec.structs.replace(
        state,
        route_id=new_route.route_id,
        route_version=new_route.version,
        stops=[known.get(s.stop_id) or StopTrack(stop_id=s.stop_id) for s in new_route.stops],
    )


def on_stop_completed(
    state: TrackerState, stop_id: StopId, at_epoch_s: int, config: EtaConfig = DEFAULT_CONFIG
) -> TrackerState:
    """Record that the driver app closed ``stop_id`` (delivered or failed) at ``at_epoch_s``.

    The stop is done; stops before it stay as they were (a driver who served it out of order
    may serve them next, so the next stop is still the first pending one in the route's
    sequence); the next leg starts at the driver's last position at ``at_epoch_s``; a stop
    that had been detected as arrived teaches the driver's service factor. An unknown or
    already finished stop leaves the state as it was, so a repeated call is harmless. Call
    :func:`refresh` afterwards for new windows.
    """
    return mark_completed(state, stop_id, at_epoch_s, config)


def update(
    state: TrackerState | None,
    route: EtaRoute,
    fix: Fix | Ping,
    provider: MatrixProvider,
    config: EtaConfig = DEFAULT_CONFIG,
) -> EtaUpdate:
    """Fold one fix into the driver's state; return the new state, windows and events.

    ``state`` is ``None`` for a driver's first fix on the route. A state of another route or
    version is first carried over with :func:`on_route_changed`. A fix no later than the last
    one seen changes nothing and returns no windows or events (re-sent and reordered pings are
    harmless). ``provider`` must handle the route's kind of location. Raises
    :class:`~solver.errors.ProblemError` for a time window ending before it starts, or a fix
    and stops of different kinds, and :class:`~solver.errors.MatrixError` from the provider.
    """
    if isinstance(fix, Ping):
        fix = fix_of(fix)
    state = _aligned(state, route)
    if state.last_fix_epoch_s is not None and fix.epoch_s <= state.last_fix_epoch_s:
        return EtaUpdate(state, [], [])
    detection = detect(state, route, fix, provider, config)
    return _predict(detection, route, provider, config, fix.epoch_s)


def refresh(
    state: TrackerState,
    route: EtaRoute,
    provider: MatrixProvider,
    config: EtaConfig = DEFAULT_CONFIG,
    *,
    now_epoch_s: int,
) -> EtaUpdate:
    """Recompute windows and events from the last fix's position, at ``now_epoch_s``.

    For use after :func:`on_stop_completed` or :func:`on_route_changed`, so that customers see
    the change before the next fix. Nothing is detected (no fix came); ``now_epoch_s`` earlier
    than the last fix counts as the last fix's instant. Before any fix it answers nothing.
    """
    state = _aligned(state, route)
    if state.last_position is None or state.last_fix_epoch_s is None:
        return EtaUpdate(state, [], [])
    now = max(now_epoch_s, state.last_fix_epoch_s)
    detection = Detection(
        tracks=list(state.stops),
        here=state.last_position,
        here_accurate=False,
        distances_m=[distance_m(state.last_position, s.location) for s in route.stops],
        events=[],
        state=state,
    )
    return _predict(detection, route, provider, config, now)


def _aligned(state: TrackerState | None, route: EtaRoute) -> TrackerState:
    if state is None:
        return start_tracking(route)
    if (
        state.route_id != route.route_id
        or state.route_version != route.version
        or [t.stop_id for t in state.stops] != [s.stop_id for s in route.stops]
    ):
        return on_route_changed(state, route)
    return state


class _Spread:
    """One side of the window: independent variance, and driving under shared errors.

    Its offset from the likely arrival is ``z`` standard deviations of the independent and
    shared-pace errors (``pace_ratio`` of the driver's driving, one standard deviation on this
    side), plus ``delay_ratio`` of the road's driving time as the provider has it: jams and
    incidents only ever add up, and they come with the road, however fast the driver is.
    """

    __slots__ = ("delay_ratio", "driving_s", "pace_ratio", "road_s", "variance_s2", "z")

    def __init__(self, variance_s2: float, z: float, delay_ratio: float, pace_ratio: float) -> None:
        self.variance_s2 = variance_s2
        self.z = z
        self.delay_ratio = delay_ratio
        self.pace_ratio = pace_ratio
        self.driving_s = 0.0
        self.road_s = 0.0

    def add_leg(self, drive_s: float, road_s: float, leg_ratio: float) -> None:
        self.variance_s2 += (leg_ratio * drive_s) ** 2
        self.driving_s += drive_s
        self.road_s += road_s

    def offset_s(self) -> float:
        spread = math.sqrt(self.variance_s2 + (self.pace_ratio * self.driving_s) ** 2)
        return self.z * spread + self.delay_ratio * self.road_s

    def rescale(self, before_s: float, after_s: float) -> None:
        # What a wait leaves of this side's spread: shrink every part alike.
        k = after_s / before_s if before_s > 0.0 else 1.0
        self.variance_s2 *= k * k
        self.driving_s *= k
        self.road_s *= k


def _predict(
    detection: Detection,
    route: EtaRoute,
    provider: MatrixProvider,
    config: EtaConfig,
    now: int,
) -> EtaUpdate:
    """Time the pending stops, then decide the windows to publish and the prediction events."""
    tracks = detection.tracks
    events = detection.events
    current = current_index(tracks)
    computed = _time_pending(detection, route, provider, config, now)
    published_now: list[ArrivalWindow] = []
    for i, window in sorted(computed.items()):
        track = tracks[i]
        stop = route.stops[i]
        head = event_head(route, stop, now)
        fired = set(track.fired)
        if i == current and "en_route" not in fired:
            events.append(EnRoute(**head, window=window))
            fired.add("en_route")
        if i == current and "approaching" not in fired:
            distance = detection.distances_m[i]
            near = (
                detection.here_accurate
                and config.approach_m is not None
                and distance <= config.approach_m
            )
            soon = (
                config.approach_s is not None and window.likely_epoch_s - now <= config.approach_s
            )
            if near or soon:
                events.append(Approaching(**head, distance_m=round(distance, 1), window=window))
                fired.add("approaching")
        end = max((w.end_epoch_s for w in stop.time_windows), default=None)
        if end is not None and window.likely_epoch_s > end and "running_late" not in fired:
            events.append(RunningLate(**head, window=window, customer_end_epoch_s=end))
            fired.add("running_late")
        published = track.published
        if published is None or _moved_s(published, window) > config.publish_threshold_s:
            published_now.append(window)
            if published is not None:
                events.append(EtaChanged(**head, previous=published, window=window))
            published = window
        tracks[i] = msgspec.structs.replace(
            track, fired=frozenset(fired), window=window, published=published
        )
    next_id = tracks[current].stop_id if current is not None else None
    state = msgspec.structs.replace(detection.state, stops=tracks, next_stop_id=next_id)
    return EtaUpdate(state, published_now, events)


def _time_pending(
    detection: Detection,
    route: EtaRoute,
    provider: MatrixProvider,
    config: EtaConfig,
    now: int,
) -> dict[int, ArrivalWindow]:
    """The window of every pending stop, by index (see the module doc for the rules)."""
    tracks = detection.tracks
    base = detection.state
    pace = base.pace
    stops = route.stops
    current = current_index(tracks)
    pending = [i for i, t in enumerate(tracks) if t.status == "pending"]
    if not pending:
        return {}

    if current is not None and tracks[current].status == "arrived":
        # Serving a stop: leave from it once the expected service is over.
        served = tracks[current]
        origin = stops[current].location
        ready = served.service_start_epoch_s if served.service_start_epoch_s is not None else now
        expected = pace.service_factor * stops[current].service_s
        clock = max(now + config.overrun_ratio * expected, ready + expected)
        first_var = (config.spread_service_ratio * (clock - now)) ** 2
    else:
        origin = detection.here
        clock = float(now)
        if not base.started and route.start_epoch_s is not None:
            clock = max(clock, float(route.start_epoch_s))
        first_var = config.spread_base_s**2

    # Only the legs are needed: here → first pending → next pending …, and, on a known leg,
    # from where the leg started to its stop.
    points = [origin, *(stops[i].location for i in pending)]
    trips = list(itertools.pairwise(points))
    on_leg = current == pending[0] and _leg_known(base) and base.leg_start_at is not None
    if on_leg and base.leg_start_at is not None:
        trips.append((base.leg_start_at, points[1]))
    legs = trip_durations(provider, trips, depart_epoch_s=int(clock))
    first_factor = pace.travel_factor
    if on_leg and base.leg_start_epoch_s is not None:
        first_factor = _leg_factor(
            pace.travel_factor,
            travel_variance(pace, config),
            now - base.leg_start_epoch_s,
            legs[-1],
            legs[0],
            config,
        )

    # The factor is log-normal: its uncertainty stretches the late side more than the early.
    pace_sd = math.sqrt(travel_variance(pace, config))
    late = _Spread(
        first_var,
        config.z_late,
        config.spread_delay_ratio,
        math.expm1(config.z_late * pace_sd) / config.z_late,
    )
    early = _Spread(
        first_var, config.z_early, 0.0, -math.expm1(-config.z_early * pace_sd) / config.z_early
    )
    computed: dict[int, ArrivalWindow] = {}
    for k, i in enumerate(pending):
        stop = stops[i]
        drive = (first_factor if k == 0 else pace.travel_factor) * legs[k]
        arrival = clock + drive
        for side in (late, early):
            side.add_leg(drive, legs[k], config.spread_leg_ratio)
        late_s = late.offset_s()
        early_s = early.offset_s()
        windows = stop_windows(stop)
        computed[i] = _window(stop, windows, arrival, early_s, late_s, now)
        start = service_start(round(arrival), windows)[0]
        late.rescale(late_s, service_start(round(arrival + late_s), windows)[0] - start)
        early.rescale(early_s, start - service_start(round(arrival - early_s), windows)[0])
        service = pace.service_factor * stop.service_s
        for side in (late, early):
            side.variance_s2 += (config.spread_service_ratio * service) ** 2
        clock = max(arrival, float(start)) + service
    return computed


def _leg_known(state: TrackerState) -> bool:
    return (
        state.started
        and state.leg_clean
        and state.leg_start_at is not None
        and state.leg_start_epoch_s is not None
    )


def _leg_factor(
    factor: float,
    variance: float,
    elapsed_s: int,
    leg_s: int,
    remaining_s: int,
    config: EtaConfig,
) -> float:
    """The travel factor for the rest of the current leg, leaning on how this leg went so far.

    The leg's own ratio (time spent over driving time covered, counted at most
    ``pace_outlier_sd`` standard deviations of a leg's residual off ``factor``, as
    :func:`~solver.arrival.learned_travel` counts a whole leg) weighs ``leg_pace_weight`` times
    the share of the leg covered; nothing changes before ``min_leg_s`` of driving is covered.
    """
    covered = leg_s - remaining_s
    if config.leg_pace_weight <= 0.0 or covered < max(config.min_leg_s, 1) or elapsed_s <= 0:
        return factor
    limit = config.pace_outlier_sd * math.sqrt(variance + config.pace_leg_sd**2)
    step = min(max(math.log(elapsed_s / covered) - math.log(factor), -limit), limit)
    return math.exp(math.log(factor) + config.leg_pace_weight * covered / leg_s * step)


def _window(
    stop: EtaStop,
    windows: Sequence[Window],
    arrival: float,
    early_s: float,
    late_s: float,
    now: int,
) -> ArrivalWindow:
    likely = round(arrival)
    upper = max(likely, round(arrival + late_s))
    lower = min(likely, max(now, round(arrival - early_s)))
    return ArrivalWindow(
        stop_id=stop.stop_id,
        order_id=stop.order_id,
        likely_epoch_s=likely,
        lower_epoch_s=lower,
        upper_epoch_s=upper,
        computed_epoch_s=now,
        late_s=max(0, upper - windows[-1][1]) if windows else 0,
    )


def _moved_s(before: ArrivalWindow, after: ArrivalWindow) -> int:
    return max(
        abs(after.likely_epoch_s - before.likely_epoch_s),
        abs(after.lower_epoch_s - before.lower_epoch_s),
        abs(after.upper_epoch_s - before.upper_epoch_s),
    )
