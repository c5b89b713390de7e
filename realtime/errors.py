"""Why something a device sent could not be ingested.

Hierarchy::

    IngestError(field, reason)   base: bad input, with the field at fault and why
    ├── MalformedBody            not JSON/MessagePack at all, or not the expected shape
    ├── UnsupportedMediaType     a Content-Type no decoder here understands
    ├── PayloadTooLarge          more pings (or bytes) than one request may carry
    ├── UnknownDevice            no active device has the presented token (raised by app/)
    └── InvalidPing              the one fix of an OsmAnd or OwnTracks request is invalid

One bad ping inside a native batch is not an exception: it becomes a
:class:`schemas.ping.Rejection` and the rest of the batch is kept.

These classes know nothing about HTTP: ``app/errors.py`` maps each one to a status
(400, 415, 413, 401, 400) and a WebSocket close code. ``reason`` always says what was expected
and what came, e.g. ``expected lat in [-90.0, 90.0], got 91.2``; ``field`` names the field as the
client spelled it (``lat``, ``location.coords.latitude``, ``Content-Type``), or ``$`` for the
whole body.
"""

from __future__ import annotations


class IngestError(Exception):
    """Input that cannot be ingested: ``field`` is what is wrong, ``reason`` says why."""

    field: str
    reason: str

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}(field={self.field!r}, reason={self.reason!r})"


class MalformedBody(IngestError):
    """The body is not valid JSON/MessagePack, or not an object of the expected shape."""


class UnsupportedMediaType(IngestError):
    """The request's Content-Type is not one the decoder accepts; ``field`` is ``Content-Type``."""


class PayloadTooLarge(IngestError):
    """More pings than one batch may carry, or a body larger than the configured limit."""


class UnknownDevice(IngestError):
    """No active device has the token the request presented (raised by ``app/``, never here)."""


class InvalidPing(IngestError):
    """The single fix of an OsmAnd or OwnTracks request is invalid; nothing is stored."""
