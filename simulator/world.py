"""The simulated city's hidden truth: how fast it really drives, where and when, and how long
each customer really takes. The planner does not know it; learning (docs/analytics.md) has it
to find.

Pure and deterministic: every figure is a function of the world's seed and the place (an H3
cell, an address), so the same world gives the same city on every run and in every process.

* ``city_factor``: every driver's speed against the planner's model (the ETA benchmark's
  city-wide error: 0.45 is a city that drives at less than half the assumed speed, 2 one at
  twice);
* a zone factor per H3 cell of ``zone_res`` (log-normal, ``zone_sigma``): an old town crawls,
  a ring road flies;
* an hour-of-day factor in the city's time zone: the morning and evening rush, a slower midday;
* a service factor per address (log-normal, ``service_sigma``): a customer on the fifth floor
  without a lift, one who waits at the door.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

import h3

RUSH: Final[dict[int, float]] = {
    7: 0.65, 8: 0.6, 9: 0.75, 11: 0.9, 12: 0.85, 13: 0.9, 16: 0.75, 17: 0.65, 18: 0.7,
}  # fmt: skip
"""Speed by local hour of day where it is not 1."""


def _draw(seed: int, key: str, sigma: float, low: float, high: float) -> float:
    """A log-normal factor around 1 for ``key``, the same in every process (``crc32``, not
    Python's salted ``hash``)."""
    rng = random.Random(seed * 2_654_435_761 + zlib.crc32(key.encode()))
    return min(high, max(low, rng.lognormvariate(0.0, sigma)))


@dataclass(frozen=True)
class World:
    """A city's hidden driving speeds and service times (see the module docstring)."""

    seed: int = 1
    city_factor: float = 1.0
    zone_res: int = 7
    zone_sigma: float = 0.3
    service_sigma: float = 0.4
    timezone: str = "UTC"
    rush: dict[int, float] = field(default_factory=lambda: dict(RUSH))

    def __post_init__(self) -> None:
        if not (math.isfinite(self.city_factor) and 0.1 <= self.city_factor <= 10):
            raise ValueError(f"expected city_factor in [0.1, 10], got {self.city_factor}")
        ZoneInfo(self.timezone)  # fails loudly for an unknown zone

    def zone_factor(self, lat: float, lon: float) -> float:
        """The speed factor of the zone holding (lat, lon)."""
        cell = h3.latlng_to_cell(lat, lon, self.zone_res)
        return _draw(self.seed, cell, self.zone_sigma, 0.4, 2.0)

    def hour_factor(self, epoch_s: float) -> float:
        """The speed factor of the local hour of ``epoch_s``."""
        local = datetime.fromtimestamp(epoch_s, UTC).astimezone(ZoneInfo(self.timezone))
        return self.rush.get(local.hour, 1.0)

    def speed_factor(self, lat: float, lon: float, epoch_s: float) -> float:
        """How much faster than the planner's model one drives at (lat, lon) at ``epoch_s``."""
        return self.city_factor * self.zone_factor(lat, lon) * self.hour_factor(epoch_s)

    def service_factor(self, lat: float, lon: float) -> float:
        """How much longer than the order says the customer at (lat, lon) really takes."""
        return _draw(self.seed + 1, f"{lat:.5f},{lon:.5f}", self.service_sigma, 0.3, 3.0)
