"""Device protocol adapters: bytes or query parameters in, a validated Ping out.

One module per protocol, each pure (no I/O, no framework imports):

* :mod:`~realtime.protocols.native` — lastmile's own batch API and driver WebSocket (JSON or
  MessagePack), where each bad ping is rejected on its own and the rest are kept;
* :mod:`~realtime.protocols.osmand` — the OsmAnd protocol spoken by Traccar Client and others
  (query string, form body, or the newer JSON body);
* :mod:`~realtime.protocols.owntracks` — OwnTracks in HTTP mode.

Adapters convert units to SI and apply the same range checks as the native API (they build a
dict of :class:`~schemas.ping.Ping` fields and run :func:`msgspec.convert`). The server-clock
window (:func:`realtime.validate.check_times`) is applied by the caller for the single-fix
protocols, and by :func:`~realtime.protocols.native.decode_batch` for batches.
"""
