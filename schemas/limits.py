"""What every decoded input must also satisfy, beyond what its msgspec type says.

Two rules hold for every body, frame and row, whatever its type:

* **Nesting.** msgspec decodes nested arrays and objects recursively and gives up with a
  ``RecursionError`` at Python's recursion limit (1,000 frames, less the stack in use). Every
  place that decodes client bytes catches it and refuses the input as malformed with
  :data:`TOO_DEEP`. No input of the API nests more than a few levels, and msgspec never gives
  up before :data:`MAX_NESTING` levels, so the reason is true whenever it is given.
* **Text without NUL.** PostgreSQL refuses the character U+0000 in ``text``; a string holding
  it would fail at the database, after the request was accepted. :func:`nul_field` finds the
  first such string in a decoded value, so that the decoding place refuses it naming the field
  (:data:`NO_NUL`). In JSON the character can only come escaped (``\\u0000``), so a body
  without that escape needs no walk.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Final

import msgspec

from schemas.reasons import ROOT

MAX_NESTING: Final = 500
"""Nesting that every decoder here accepts; deeper input may be refused with :data:`TOO_DEEP`."""

TOO_DEEP: Final = f"nesting deeper than {MAX_NESTING} levels"
"""The reason given for input whose decoding ran into the recursion limit."""

NO_NUL: Final = "expected text without NUL characters"
"""The reason given for a string holding U+0000."""

JSON_NUL: Final = b"\\u0000"
"""How U+0000 appears in JSON (a raw NUL byte is invalid JSON): its absence rules NUL out."""


def nul_field(value: object, path: str = "") -> str | None:
    """The field of the first string in ``value`` that holds U+0000, or None if there is none.

    Walks Structs (naming fields as they are on the wire), lists, tuples, sets and dicts;
    ``path`` is the name of ``value`` itself (empty: the whole input, named ``$``). A dict key
    holding NUL is reported at the dict.
    """
    if isinstance(value, str):
        return (path or ROOT) if "\x00" in value else None
    if isinstance(value, msgspec.Struct):
        names = zip(value.__struct_fields__, value.__struct_encode_fields__, strict=True)
        for attribute, wire in names:
            found = nul_field(getattr(value, attribute), f"{path}.{wire}" if path else wire)
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return path or ROOT
            found = nul_field(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            found = nul_field(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
