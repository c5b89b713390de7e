"""The rows of an order import: CSV or a JSON array in, orders and per-row problems out.

Pure: bytes and the organisation's settings in, :class:`Rows` out; nothing here touches the
network or the database, so every rule is tested without servers.

**CSV** (``text/csv``, UTF-8, a byte-order mark is ignored; the delimiter is ``,``, or ``;``
when the header has semicolons and no commas). The header names the columns, in any order,
case-insensitively:

==========================================  ===================================================
``ref``, ``address``, ``lat``, ``lon``,     required; ``ref`` is the order's ``external_ref``
``day``
``customer_name``, ``phone``, ``email``,    optional, as in ``POST /v1/orders``
``language``, ``service_s``, ``priority``,
``notes``
``window_start``, ``window_end``,           time windows 1, 2, … 10; a time is ``09:30`` (on the
``window2_start``, ``window2_end``, …       row's day), ``2026-11-24T09:30`` (both in the
                                            organisation's time zone) or with a zone
``skills``, ``barcodes``                    several values separated by ``|`` or ``;``
one column per capacity dimension           e.g. ``weight_kg``, ``volume_l``, ``parcels``
==========================================  ===================================================

An empty cell is an absent value. An unknown, repeated or missing required column refuses
the whole file (400 naming the column); a bad cell refuses its row only. ``line`` counts
records as a spreadsheet numbers rows: the header is line 1.

**JSON** (``application/json``): an array of ``POST /v1/orders`` bodies; ``line`` is the
index in the array (from 0) and fields are named as in that body.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Final

import msgspec

from app.api.checks import zone
from app.errors import ApiError, InvalidField
from app.http import JSON, convert, explain, loose_json
from realtime.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from schemas.codecs import IMPORT_ITEMS_JSON, ORDER_IN_JSON
from schemas.delivery import MAX_WINDOWS, ImportProblem, OrderIn
from schemas.limits import JSON_NUL, NO_NUL, TOO_DEEP, nul_field
from schemas.reasons import ROOT, show
from store.delivery import OrgSettings

MAX_IMPORT_ROWS: Final = 50_000
CSV: Final = "text/csv"
REQUIRED_COLUMNS: Final = ("ref", "address", "lat", "lon", "day")
PLAIN_COLUMNS: Final = {
    "ref": "external_ref",
    "customer_name": "customer_name",
    "phone": "phone",
    "email": "email",
    "language": "language",
    "address": "address",
    "lat": "lat",
    "lon": "lon",
    "day": "day",
    "service_s": "service_s",
    "priority": "priority",
    "notes": "notes",
    "notifications_opt_out": "notifications_opt_out",
}
"""CSV column → field of :class:`~schemas.delivery.OrderIn`, for one-value columns."""
LIST_COLUMNS: Final = ("skills", "barcodes")
RESERVED_COLUMNS: Final = frozenset((*PLAIN_COLUMNS, *LIST_COLUMNS))
"""Column names a capacity dimension may not take."""

_WINDOW_COLUMN: Final = re.compile(r"^window(?P<n>[2-9]|10)?_(?P<edge>start|end)$")
_SEPARATORS: Final = re.compile(r"[|;]")
_CLOCK: Final = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")


@dataclass
class Rows:
    """What an import body holds: ``rows`` counted, the orders read, the rows refused.

    ``windows[line]`` lists, for a CSV row, the column prefix of each window the order got
    (``window``, ``window3``), so that a problem found later names the column the user wrote.
    """

    rows: int = 0
    orders: list[tuple[int, OrderIn]] = field(default_factory=list)
    rejected: list[ImportProblem] = field(default_factory=list)
    csv: bool = False
    windows: dict[int, list[str]] = field(default_factory=dict)

    def problem(self, line: int, error: ApiError) -> ImportProblem:
        """The :class:`ImportProblem` of ``error`` on ``line``, in the body's own field names."""
        name = error.field or ROOT
        if self.csv:
            name = csv_column(name, self.windows.get(line, []))
        return ImportProblem(line=line, field=name, reason=error.reason)


def read_rows(body: bytes, content_type: str | None, settings: OrgSettings) -> Rows:
    """The rows of an import body, by its ``Content-Type`` (``text/csv`` or JSON).

    Raises :class:`UnsupportedMediaType`, :class:`MalformedBody` (not UTF-8 CSV, not a JSON
    array), :class:`PayloadTooLarge` (more than :data:`MAX_IMPORT_ROWS` rows) and
    :class:`InvalidField` (a column the header cannot have or lacks).
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == CSV:
        return _read_csv(body, settings)
    if media == JSON:
        return _read_json(body)
    raise UnsupportedMediaType(
        "Content-Type", f"expected {CSV} or {JSON}, got {content_type or 'no Content-Type'}"
    )


def _too_many(count: int | None = None) -> PayloadTooLarge:
    got = f"got {count}" if count is not None else "got more"
    return PayloadTooLarge("rows", f"expected at most {MAX_IMPORT_ROWS} rows, {got}")


def _read_json(body: bytes) -> Rows:
    try:
        items = IMPORT_ITEMS_JSON.decode(body)
    except msgspec.DecodeError:
        raise MalformedBody(ROOT, "expected a JSON array of order objects") from None
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None
    if len(items) > MAX_IMPORT_ROWS:
        raise _too_many(len(items))
    rows = Rows(rows=len(items))
    nul = JSON_NUL in body  # else no order can hold NUL, and none needs looking through
    for index, raw in enumerate(items):
        try:
            order = ORDER_IN_JSON.decode(raw)
        except msgspec.ValidationError as exc:
            name, reason = explain(exc, loose_json(raw))
            rows.rejected.append(ImportProblem(line=index, field=name, reason=reason))
            continue
        text = nul_field(order) if nul else None
        if text is not None:
            rows.rejected.append(ImportProblem(line=index, field=text, reason=NO_NUL))
        else:
            rows.orders.append((index, order))
    return rows


def _read_csv(body: bytes, settings: OrgSettings) -> Rows:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        got = f"a byte 0x{body[exc.start]:02x} at offset {exc.start}"
        raise MalformedBody("body", f"expected UTF-8 text, got {got}") from None
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = Rows(csv=True)
    nul = "\x00" in text  # else no cell can hold NUL, and none needs looking through
    line = 1
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        _check_header(header, settings.dimensions)
        for line, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # a blank line: counted in line numbers, not a row
            rows.rows += 1
            if rows.rows > MAX_IMPORT_ROWS:
                raise _too_many()
            column = _nul_column(header, cells) if nul else None
            if column is not None:
                rows.rejected.append(ImportProblem(line=line, field=column, reason=NO_NUL))
                continue
            _read_record(rows, line, header, cells, settings)
    except csv.Error as exc:
        raise MalformedBody("body", f"line {line + 1}: expected CSV, {exc}") from None
    return rows


def _nul_column(header: list[str], cells: list[str]) -> str | None:
    """The column of the first cell holding NUL (``$`` for a cell beyond the header), or None."""
    for n, cell in enumerate(cells):
        if "\x00" in cell:
            return header[n] if n < len(header) else ROOT
    return None


def _check_header(header: list[str], dimensions: list[str]) -> None:
    if not header:
        raise InvalidField("ref", "expected a header row naming the columns, got an empty body")
    allowed = [*PLAIN_COLUMNS, "window_start", "window_end", "windowN_start", "windowN_end"]
    allowed += [*LIST_COLUMNS, *dimensions]
    for n, name in enumerate(header):
        if name in header[:n]:
            raise InvalidField(name, "expected each column once, got it twice")
        known = name in PLAIN_COLUMNS or name in LIST_COLUMNS or name in dimensions
        if not known and not _WINDOW_COLUMN.match(name):
            raise InvalidField(name, f"unknown column; expected {', '.join(allowed)}")
    for name in REQUIRED_COLUMNS:
        if name not in header:
            raise InvalidField(name, "the header lacks this required column")


def _read_record(
    rows: Rows, line: int, header: list[str], cells: list[str], settings: OrgSettings
) -> None:
    if len(cells) > len(header):
        rows.rejected.append(
            ImportProblem(
                line=line,
                field=ROOT,
                reason=f"expected at most {len(header)} cells, got {len(cells)}",
            )
        )
        return
    values = {name: cell.strip() for name, cell in zip(header, cells, strict=False) if cell.strip()}
    try:
        document = _document(values, settings, rows.windows.setdefault(line, []))
        rows.orders.append((line, convert(document, OrderIn)))
    except InvalidField as exc:
        rows.rejected.append(rows.problem(line, exc))


def _document(values: dict[str, str], settings: OrgSettings, windows: list[str]) -> dict[str, Any]:
    """The ``POST /v1/orders`` body a CSV row stands for; ``windows`` gets each window's prefix."""
    document: dict[str, Any] = {
        PLAIN_COLUMNS[name]: value for name, value in values.items() if name in PLAIN_COLUMNS
    }
    if "skills" in values:
        document["required_skills"] = _split(values["skills"])
    if "barcodes" in values:
        document["parcels"] = [{"barcode": code} for code in _split(values["barcodes"])]
    size = {name: values[name] for name in settings.dimensions if name in values}
    if size:
        document["size"] = size
    day: date | None = None
    if "day" in values:
        try:
            day = date.fromisoformat(values["day"])
        except ValueError:
            raise InvalidField(
                "day", f"expected a date such as 2026-11-24, got {show(values['day'])}"
            ) from None
    found: list[dict[str, datetime]] = []
    for n in range(1, MAX_WINDOWS + 1):
        prefix = "window" if n == 1 else f"window{n}"
        start, end = values.get(f"{prefix}_start"), values.get(f"{prefix}_end")
        if start is None and end is None:
            continue
        if start is None or end is None:
            missing = f"{prefix}_start" if start is None else f"{prefix}_end"
            raise InvalidField(missing, "expected both ends of the window, got one")
        windows.append(prefix)
        found.append(
            {
                "start": _time(start, f"{prefix}_start", day, settings.timezone),
                "end": _time(end, f"{prefix}_end", day, settings.timezone),
            }
        )
    if found:
        document["time_windows"] = found
    return document


def _split(cell: str) -> list[str]:
    return [part.strip() for part in _SEPARATORS.split(cell) if part.strip()]


def _time(cell: str, column: str, day: date | None, timezone: str) -> datetime:
    """A window's time: a clock time on ``day``, or a date-time; without a zone, the org's."""
    expected = "expected a time such as 09:30, 2026-11-24T09:30 or 2026-11-24T09:30:00+01:00"
    try:
        if _CLOCK.match(cell):
            if day is None:
                raise InvalidField(column, f"a clock time needs the row's day; got {show(cell)}")
            hours, rest = cell.split(":", 1)
            return datetime.combine(
                day, time.fromisoformat(f"{int(hours):02d}:{rest}"), zone(timezone)
            )
        value = datetime.fromisoformat(cell)
    except ValueError:
        raise InvalidField(column, f"{expected}, got {show(cell)}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone(timezone))


_WINDOW_FIELD: Final = re.compile(r"^time_windows\[(?P<n>\d+)\](?:\.(?P<edge>start|end))?")


def csv_column(name: str, windows: list[str]) -> str:
    """The CSV column a field of :class:`OrderIn` came from (``time_windows[1].end`` → …)."""
    window = _WINDOW_FIELD.match(name)
    if window:
        n = int(window["n"])
        prefix = windows[n] if n < len(windows) else "window"
        return f"{prefix}_{window['edge'] or 'start'}"
    if name == "external_ref":
        return "ref"
    if name.startswith("required_skills"):
        return "skills"
    if name.startswith("parcels"):
        return "barcodes"
    if name.startswith("size."):
        return name.removeprefix("size.")
    if name.startswith("time_windows"):
        return "window_start"
    return name
