"""Live arrival windows and delivery events: what the ETA model reads, keeps and answers.

The ETA worker keeps one :class:`TrackerState` per driver on a dispatched route and hands it,
with the route as an :class:`EtaRoute` and each position :class:`Fix`, to the pure functions of
:mod:`solver.eta`. They answer with a new state, the :class:`ArrivalWindow` of every stop whose
window moved enough to be worth publishing, and the :data:`DeliveryEvent` values detected on the
way. The worker stores the state and delivers the rest; nothing here does I/O.

Conventions (they hold for every Struct below):

* **Instants are integer seconds since the Unix epoch (UTC)**, in fields ending ``_epoch_s``,
  as everywhere in the solver (:mod:`schemas.planning`). The worker converts to timezone-aware
  datetimes for the API and the tracking page.
* **Distances** are metres, **durations** seconds, and **locations** are
  :class:`~schemas.planning.Location` values: WGS84 ``lat``/``lon`` in production, planar
  ``x_m``/``y_m`` in tests and benchmarks. One route and its fixes use one kind throughout.
* **Windows are predictions of arrival** (reaching the stop), not of service start: a driver
  who arrives before the customer's window opens arrives early and waits.
* **Stops are keyed by** :data:`~schemas.ids.StopId`; per-stop state survives a new route
  version for every stop id the new version still holds.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.ids import DriverId, OrderId, RouteId, StopId
from schemas.planning import DurationS, EpochS, Location, PlanningTimeWindow

TrackStatus = Literal["pending", "arrived", "departed", "completed", "skipped"]
"""Where a stop stands as far as the tracker knows.

* ``pending``: not reached yet;
* ``arrived``: the driver has been inside its arrival radius for the dwell time;
* ``departed``: the driver left it after arriving (done);
* ``completed``: the driver app reported it delivered or failed (done);
* ``skipped``: the driver drove past it, on to the following stop, without a detected arrival
  (see :mod:`solver.arrival` for the rule). A skipped stop gets no windows; a later detected
  arrival there revives it.
"""

EventKind = Literal["en_route", "approaching", "arrived", "departed", "running_late", "eta_changed"]
"""The delivery events recorded in :attr:`StopTrack.fired`, as named by their ``type`` tag.

``out_of_sequence`` (:class:`OutOfSequence`) is a delivery event too, but fires once per stay,
not once per stop, so the tracker records it in :attr:`StopTrack.flagged_stay_epoch_s`.
"""


class EtaStop(msgspec.Struct, frozen=True, kw_only=True):
    """One stop still to serve, as the ETA model needs it.

    ``time_windows`` are the customer's (empty: any time); service starts at arrival or when the
    next window opens, and lasts ``service_s`` as planned. ``planned_arrival_epoch_s`` is the
    arrival in the dispatched plan.
    """

    stop_id: StopId
    order_id: OrderId
    location: Location
    time_windows: list[PlanningTimeWindow] = []
    service_s: DurationS = 0
    planned_arrival_epoch_s: EpochS
    arrived_epoch_s: EpochS | None = None
    """When the driver app reported arriving at the stop (``None``: not reported). The stop is
    served from then on, wherever it is in the route's order."""


class EtaRoute(msgspec.Struct, frozen=True, kw_only=True):
    """A dispatched route as the ETA model needs it: its open stops in driving order.

    ``version`` is the route's version; a new one replaces the stops (see
    :func:`solver.eta.on_route_changed`). ``start_epoch_s`` is the planned departure: until the
    driver first moves away from where tracking began, no arrival is predicted to leave earlier.
    """

    driver_id: DriverId
    route_id: RouteId
    version: int
    stops: list[EtaStop]
    start_epoch_s: EpochS | None = None


class Fix(msgspec.Struct, frozen=True, kw_only=True):
    """A position at an instant; :func:`solver.eta.fix_of` makes one from a ping.

    ``accuracy_m`` is the device's horizontal accuracy; fixes worse than
    :attr:`EtaConfig.max_accuracy_m` still move the predictions but never arrive or depart.
    """

    epoch_s: EpochS
    location: Location
    accuracy_m: Annotated[float, Meta(ge=0.0)] | None = None


class ArrivalWindow(msgspec.Struct, frozen=True, kw_only=True):
    """When the driver is expected at a stop: ``lower_epoch_s <= likely_epoch_s <= upper_epoch_s``.

    The bounds hold the arrival with the probability set by :attr:`EtaConfig.window_quantiles`
    (80 % by default). ``computed_epoch_s`` is the instant of the fix the window was computed
    from; ``late_s`` is how far ``upper_epoch_s`` passes the end of the customer's last time
    window (0 when it does not, or when the stop has no window).
    """

    stop_id: StopId
    order_id: OrderId
    likely_epoch_s: EpochS
    lower_epoch_s: EpochS
    upper_epoch_s: EpochS
    computed_epoch_s: EpochS
    late_s: DurationS = 0


class _StopEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    driver_id: DriverId
    route_id: RouteId
    route_version: int
    stop_id: StopId
    order_id: OrderId
    at_epoch_s: EpochS
    """The instant of the fix (or of the completion) that revealed the event."""


class EnRoute(_StopEvent, frozen=True, kw_only=True, tag="en_route"):
    """The stop became the driver's next one; ``window`` is its window at that moment."""

    window: ArrivalWindow | None = None


class Approaching(_StopEvent, frozen=True, kw_only=True, tag="approaching"):
    """The next stop is within :attr:`EtaConfig.approach_s` or :attr:`EtaConfig.approach_m`.

    ``distance_m`` is the straight line from the driver to the stop.
    """

    distance_m: float
    window: ArrivalWindow | None = None


class ArrivalDetected(_StopEvent, frozen=True, kw_only=True, tag="arrived"):
    """The driver stayed inside the arrival radius of the route's next stop for the dwell time,
    or the driver app reported arriving at a stop (``reported``).

    ``arrived_epoch_s`` is the first fix inside the radius (``at_epoch_s`` is later by at least
    the dwell time); for a reported arrival, the report's instant, or the first fix of a stay
    inside the radius that began before it.
    """

    arrived_epoch_s: EpochS
    reported: bool = False


class DepartureDetected(_StopEvent, frozen=True, kw_only=True, tag="departed"):
    """The driver left the stop's departure radius after arriving there.

    ``departed_epoch_s`` is the last fix inside the arrival radius.
    """

    arrived_epoch_s: EpochS
    departed_epoch_s: EpochS


class RunningLate(_StopEvent, frozen=True, kw_only=True, tag="running_late"):
    """The likely arrival is now after the end of the customer's last time window (an alert,
    and a message to the customer).

    ``window.likely_epoch_s - customer_end_epoch_s`` says by how much; ``window.late_s`` how far
    the window's upper bound passes it.
    """

    window: ArrivalWindow
    customer_end_epoch_s: EpochS


class EtaChanged(_StopEvent, frozen=True, kw_only=True, tag="eta_changed"):
    """A published window moved by more than :attr:`EtaConfig.publish_threshold_s`."""

    previous: ArrivalWindow
    window: ArrivalWindow


class OutOfSequence(_StopEvent, frozen=True, kw_only=True, tag="out_of_sequence"):
    """The driver stayed the dwell time at a stop that is not the route's next one (an alert
    for dispatchers: the stop's customer hears of it only once the driver app reports the stop).

    ``expected_stop_id``/``expected_order_id`` name the route's next pending stop;
    ``stay_start_epoch_s`` is the first fix of the stay inside this stop's arrival radius and
    ``dwell_s`` how long the stay had lasted at ``at_epoch_s``. Fires once per stay.
    """

    expected_stop_id: StopId
    expected_order_id: OrderId
    stay_start_epoch_s: EpochS
    dwell_s: DurationS


DeliveryEvent = (
    EnRoute
    | Approaching
    | ArrivalDetected
    | DepartureDetected
    | RunningLate
    | EtaChanged
    | OutOfSequence
)


class StopTrack(msgspec.Struct, frozen=True, kw_only=True):
    """What the tracker knows about one stop.

    ``inside_since_epoch_s``/``entered_at`` are the first fix of the current stay inside the
    arrival radius (``None`` when outside); ``closest_m`` is the closest the driver came while
    the stop was next; ``last_inside_epoch_s``/``last_inside_at`` the latest fix inside the
    arrival radius after arriving. ``service_start_epoch_s`` and ``service_s`` are fixed at
    arrival (they let a completion learn the service time without the route). ``fired`` holds
    the once-only events already emitted; ``window`` is the latest computed window and
    ``published`` the last one returned for publication. ``flagged_stay_epoch_s`` is the
    first fix of the last stay reported :class:`OutOfSequence`, so a stay is reported once.
    """

    stop_id: StopId
    status: TrackStatus = "pending"
    inside_since_epoch_s: EpochS | None = None
    entered_at: Location | None = None
    closest_m: float | None = None
    arrived_epoch_s: EpochS | None = None
    last_inside_epoch_s: EpochS | None = None
    last_inside_at: Location | None = None
    service_start_epoch_s: EpochS | None = None
    service_s: DurationS = 0
    departed_epoch_s: EpochS | None = None
    fired: frozenset[EventKind] = frozenset()
    window: ArrivalWindow | None = None
    published: ArrivalWindow | None = None
    flagged_stay_epoch_s: EpochS | None = None


class DriverPace(msgspec.Struct, frozen=True, kw_only=True):
    """How this driver runs against the travel-time provider and the planned service times.

    ``travel_factor`` is actual over predicted driving time, estimated in log space from
    ``travel_legs`` legs with ``travel_var`` the variance of that estimate (``None``: nothing
    learned yet, the prior :attr:`EtaConfig.pace_prior_sd` squared). ``service_factor`` is
    observed over planned service time, exponentially smoothed in log space over
    ``service_stops`` services. A worker may seed them from the driver's history.
    """

    travel_factor: Annotated[float, Meta(gt=0.0)] = 1.0
    travel_legs: Annotated[int, Meta(ge=0)] = 0
    travel_var: Annotated[float, Meta(ge=0.0)] | None = None
    service_factor: Annotated[float, Meta(gt=0.0)] = 1.0
    service_stops: Annotated[int, Meta(ge=0)] = 0


class TrackerState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the ETA model remembers about one driver on one route between calls.

    ``stops`` follow the route's order. The current leg began at ``leg_start_epoch_s`` at
    ``leg_start_at`` (the last fix near ``leg_anchor``, the place the leg started from);
    ``leg_clean`` is false once a stop was skipped on the leg, whose timing then teaches
    nothing. ``started`` turns true when the driver first leaves the place tracking began.
    """

    driver_id: DriverId
    route_id: RouteId
    route_version: int
    stops: list[StopTrack] = []
    next_stop_id: StopId | None = None
    pace: DriverPace = DriverPace()
    last_fix_epoch_s: EpochS | None = None
    last_position: Location | None = None
    started: bool = False
    leg_anchor: Location | None = None
    leg_start_at: Location | None = None
    leg_start_epoch_s: EpochS | None = None
    leg_clean: bool = True


def _z(quantile: float) -> float:
    return NormalDist().inv_cdf(quantile)


class SavedTracker(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A driver's tracker state as the ETA worker keeps it in Redis between pings."""

    route_id: RouteId
    state: TrackerState


class EtaConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Detection radii and times, publication threshold, learning, and the window's spread.

    **Detection** (rules in :mod:`solver.arrival`): a stop is *arrived* after ``dwell_s``
    inside ``arrival_radius_m`` and *departed* at the first fix beyond ``departure_radius_m``
    (larger, so GPS jitter at the edge does not flap). The next stop is *approaching* within
    ``approach_s`` of its likely arrival or ``approach_m`` in a straight line (``None`` turns a
    criterion off). A next stop the driver came within ``pass_radius_m`` of and then left for
    the following one is *skipped*. Fixes less accurate than ``max_accuracy_m`` detect nothing.

    **Publication**: a window is published again when it moved by more than
    ``publish_threshold_s``.

    **Learning the travel pace** is a Kalman filter on the log of the driver's travel factor:
    before any leg it is 1 with standard deviation ``pace_prior_sd`` (the travel model may be
    wrong for the whole city, by × 0.45 to × 2), or, where the organisation's learned speeds
    say how far a whole route strays from them, that spread (at least
    ``pace_prior_learned_min``, at most ``pace_prior_sd``; see :meth:`with_learned_prior`);
    each leg (of at least ``min_leg_s`` predicted driving) observes it with noise
    ``pace_leg_sd``, the factor may drift by ``pace_drift_sd`` between legs, and a leg's
    evidence counts as at most ``pace_outlier_sd`` standard deviations off the estimate (a jam
    says little about the next legs). Consistent evidence so moves the factor most of the way
    in one leg while it is uncertain and little once it is known. The factor stays within
    ``[pace_min, pace_max]``. On the current leg, its own pace so far weighs up to
    ``leg_pace_weight`` (times the share of the leg driven).

    **Learning the service pace**: each service moves the factor ``service_smoothing`` of the
    way towards the observed ratio in log space, counting a ratio at most ``service_outlier``
    times off the current factor. A service under way always has at least ``overrun_ratio`` of
    its expected length left (service times have a long tail).

    **Spread**, in standard deviations turned into bounds at ``window_quantiles``:
    ``spread_base_s`` at the next stop, ``spread_leg_ratio`` of each leg's driving
    (independent per leg), the travel factor's own uncertainty (one error shared by all the
    driving ahead, from the filter's variance, so windows are wide while the pace is unknown)
    and ``spread_service_ratio`` of each service ahead; the late bound adds
    ``spread_delay_ratio`` of the driving ahead, because jams and incidents only ever delay.
    The defaults are calibrated with ``python -m bench.eta_quality`` (see ``docs/eta.md``).
    """

    arrival_radius_m: Annotated[float, Meta(gt=0.0)] = 75.0
    departure_radius_m: Annotated[float, Meta(gt=0.0)] = 100.0
    dwell_s: Annotated[int, Meta(ge=0)] = 30
    approach_s: Annotated[int, Meta(ge=0)] | None = 600
    approach_m: Annotated[float, Meta(ge=0.0)] | None = 1000.0
    pass_radius_m: Annotated[float, Meta(gt=0.0)] = 150.0
    max_accuracy_m: Annotated[float, Meta(gt=0.0)] = 100.0

    publish_threshold_s: Annotated[int, Meta(ge=0)] = 120

    min_leg_s: Annotated[int, Meta(ge=0)] = 60
    pace_prior_sd: Annotated[float, Meta(ge=0.0)] = 0.45
    pace_prior_learned_min: Annotated[float, Meta(ge=0.0)] = 0.1
    pace_leg_sd: Annotated[float, Meta(gt=0.0)] = 0.2
    pace_drift_sd: Annotated[float, Meta(ge=0.0)] = 0.02
    pace_outlier_sd: Annotated[float, Meta(gt=0.0)] = 2.0
    pace_min: Annotated[float, Meta(gt=0.0)] = 0.25
    pace_max: Annotated[float, Meta(gt=0.0)] = 4.0
    leg_pace_weight: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.5
    service_smoothing: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.3
    service_outlier: Annotated[float, Meta(ge=1.0)] = 1.25
    overrun_ratio: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.25

    window_quantiles: tuple[float, float] = (0.1, 0.9)
    spread_base_s: Annotated[float, Meta(ge=0.0)] = 40.0
    spread_leg_ratio: Annotated[float, Meta(ge=0.0)] = 0.08
    spread_service_ratio: Annotated[float, Meta(ge=0.0)] = 0.45
    spread_delay_ratio: Annotated[float, Meta(ge=0.0)] = 0.2

    def __post_init__(self) -> None:
        low, high = self.window_quantiles
        if not 0.0 < low < 0.5 < high < 1.0:
            raise ValueError(
                f"expected window_quantiles with 0 < low < 0.5 < high < 1, got {low}, {high}"
            )
        if self.departure_radius_m < self.arrival_radius_m:
            raise ValueError(
                f"expected departure_radius_m >= arrival_radius_m ({self.arrival_radius_m}), "
                f"got {self.departure_radius_m}"
            )
        if self.pace_min > 1.0 or self.pace_max < 1.0:
            raise ValueError(
                f"expected pace_min <= 1 <= pace_max, got {self.pace_min}, {self.pace_max}"
            )

    def with_learned_prior(self, route_pace_sd: float | None) -> EtaConfig:
        """This configuration with the pace prior a learned model measured (its spread of
        whole routes' driving time against it), kept within ``[pace_prior_learned_min,
        pace_prior_sd]``; unchanged without one."""
        if route_pace_sd is None:
            return self
        prior = min(self.pace_prior_sd, max(self.pace_prior_learned_min, route_pace_sd))
        return msgspec.structs.replace(self, pace_prior_sd=prior)

    @property
    def z_early(self) -> float:
        """Standard deviations from likely to the lower bound (positive)."""
        return -_z(self.window_quantiles[0])

    @property
    def z_late(self) -> float:
        """Standard deviations from likely to the upper bound (positive)."""
        return _z(self.window_quantiles[1])
