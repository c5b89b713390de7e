"""Whether customers see the proof of their delivery's photo (``/v1/settings/customer-proof``)."""

from __future__ import annotations

import msgspec


class CustomerProof(msgspec.Struct, frozen=True, kw_only=True):
    """What the tracking page shows of a delivered order's proof, besides the time and the
    driver's note (always shown): ``photo``, the first proof photo, when true."""

    photo: bool
