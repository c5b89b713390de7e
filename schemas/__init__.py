"""Everything lastmile puts on the wire and on its streams, as frozen msgspec Structs.

Rules for evolving a schema (they keep old stream entries and old clients readable):

* a new field always has a default;
* a field's type never changes in place: add a new field and deprecate the old one;
* units are part of the name (``speed_mps``, ``accuracy_m``) or stated in the docstring;
* times on the API and the streams are timezone-aware ``datetime`` values, coordinates WGS84
  degrees; the solver's planning types (:mod:`schemas.planning`, :mod:`schemas.reoptimize`)
  use integer epoch seconds and metres instead, because the solver computes in integers.

Encoders and decoders are built once, in :mod:`schemas.codecs`.
"""
