"""Orders and their parcels: create, read, list, update while pending, cancel, bulk import.

An order is identified for its organisation's systems by ``external_ref``, unique per
organisation (constraint ``orders_org_ref_key``). :func:`create_order` refuses a taken ref
(:class:`~store.delivery.Duplicate`); :func:`import_orders` skips it and reports the
existing order, so re-importing a file creates nothing twice.

Parcels live in their own table (``parcels``, ordered by ``position``) because proof of
delivery will scan and mark them one by one. Time windows are two aligned ``timestamptz[]``
columns; sizes are ``jsonb`` objects ``{dimension: amount}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row, scalar_row
from psycopg.types.json import Jsonb

from schemas.delivery import (
    ImportedRow,
    Order,
    OrderIn,
    OrderStatus,
    Parcel,
)
from schemas.ids import OrderId, OrgId
from store.delivery import WrongState, translated, windows_of
from store.rows import fetch_all, fetch_one, returned

_WRITTEN: Final = (
    "customer_name",
    "phone",
    "email",
    "language",
    "address",
    "lat",
    "lon",
    "day",
    "window_starts",
    "window_ends",
    "service_s",
    "size",
    "priority",
    "required_skills",
    "notes",
    "notifications_opt_out",
)
_SELECT: Final = (
    "SELECT o.id, o.external_ref, "
    + ", ".join(f"o.{column}" for column in _WRITTEN)
    + ", o.status, o.cancel_reason, o.cancelled_at, o.created_at, o.updated_at,"
    " coalesce((SELECT array_agg(p.barcode ORDER BY p.position) FROM parcels p"
    "           WHERE p.order_id = o.id), '{}'::text[]) AS barcodes"
    " FROM orders o"
)
_STORED: Final = (*_WRITTEN, "service_s_given")
"""What a write stores: the columns read back, and whether the service time was given."""
_INSERT: Final = (
    f"INSERT INTO orders (org_id, external_ref, {', '.join(_STORED)})"
    f" VALUES (%s, %s, {', '.join(['%s'] * len(_STORED))}) RETURNING id"
)
_UPDATE: Final = (
    f"UPDATE orders SET {', '.join(f'{c} = %s' for c in _WRITTEN)},"
    # Given when named and either given before or changed (a PATCH carries the stored value).
    " service_s_given = %s::boolean AND (service_s_given OR service_s IS DISTINCT FROM %s::int),"
    " updated_at = now()"
    " WHERE org_id = %s AND id = %s"
)
_CANCELLABLE_FROM: Final[tuple[OrderStatus, ...]] = ("pending", "planned", "dispatched", "failed")


async def default_service_s(conn: AsyncConnection, org_id: OrgId) -> int:
    """The service time of an order that names none (the organisation's setting)."""
    found = await fetch_one(
        conn, scalar_row, "SELECT default_service_s FROM orgs WHERE id = %s", (org_id,)
    )
    return 0 if found is None else int(found)


def _values(order: OrderIn, service_s: int) -> tuple[Any, ...]:
    """The :data:`_STORED` columns of ``order``; ``service_s`` where it names none."""
    return (
        order.customer_name,
        order.phone,
        order.email,
        order.language,
        order.address,
        order.lat,
        order.lon,
        order.day,
        [w.start for w in order.time_windows],
        [w.end for w in order.time_windows],
        service_s if order.service_s is None else order.service_s,
        Jsonb(order.size),
        order.priority,
        sorted(set(order.required_skills)),
        order.notes,
        order.notifications_opt_out,
        order.service_s is not None,
    )


def _order(row: dict[str, Any]) -> Order:
    return Order(
        id=OrderId(row["id"]),
        external_ref=row["external_ref"],
        customer_name=row["customer_name"],
        phone=row["phone"],
        email=row["email"],
        language=row["language"],
        address=row["address"],
        lat=row["lat"],
        lon=row["lon"],
        day=row["day"],
        time_windows=windows_of(row["window_starts"], row["window_ends"]),
        service_s=row["service_s"],
        size=row["size"],
        priority=row["priority"],
        required_skills=list(row["required_skills"]),
        parcels=[Parcel(barcode=barcode) for barcode in row["barcodes"]],
        notes=row["notes"],
        notifications_opt_out=row["notifications_opt_out"],
        status=row["status"],
        cancel_reason=row["cancel_reason"],
        cancelled_at=row["cancelled_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _write_parcels(
    conn: AsyncConnection, org_id: OrgId, order_id: OrderId, parcels: Sequence[Parcel]
) -> None:
    await conn.execute(
        "DELETE FROM parcels WHERE org_id = %s AND order_id = %s", (org_id, order_id)
    )
    if parcels:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO parcels (org_id, order_id, position, barcode) VALUES (%s, %s, %s, %s)",
                [(org_id, order_id, n, p.barcode) for n, p in enumerate(parcels)],
            )


async def create_order(conn: AsyncConnection, org_id: OrgId, order: OrderIn) -> Order:
    """Store a new order of ``org_id`` (status ``pending``) with its parcels.

    Raises :class:`~store.delivery.Duplicate` when ``external_ref`` is taken.
    """
    async with translated(), conn.transaction():
        service_s = await default_service_s(conn, org_id)
        new_id = await fetch_one(
            conn, scalar_row, _INSERT, (org_id, order.external_ref, *_values(order, service_s))
        )
        order_id = OrderId(returned(new_id))
        await _write_parcels(conn, org_id, order_id, order.parcels)
        created = await get_order(conn, org_id, order_id)
    assert created is not None
    return created


async def get_order(
    conn: AsyncConnection, org_id: OrgId, order_id: OrderId, *, lock: bool = False
) -> Order | None:
    """Order ``order_id`` of ``org_id``, or None; ``lock`` holds it until commit."""
    query = _SELECT + " WHERE o.org_id = %s AND o.id = %s" + (" FOR UPDATE OF o" if lock else "")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, (org_id, order_id))
        row = await cur.fetchone()
    return None if row is None else _order(row)


async def list_orders(
    conn: AsyncConnection,
    org_id: OrgId,
    *,
    day: date | None = None,
    status: OrderStatus | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[Order]:
    """Orders of ``org_id`` with id above ``after``, by id, at most ``limit``.

    ``day`` and ``status`` filter when given; ``(org_id, day, status)`` is indexed.
    """
    query = (
        _SELECT + " WHERE o.org_id = %s AND o.id > %s"
        " AND (%s::date IS NULL OR o.day = %s) AND (%s::text IS NULL OR o.status = %s)"
        " ORDER BY o.id LIMIT %s"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, (org_id, after, day, day, status, status, limit))
        return [_order(row) for row in await cur.fetchall()]


async def update_order(
    conn: AsyncConnection, org_id: OrgId, order_id: OrderId, order: OrderIn
) -> Order | None:
    """Overwrite order ``order_id`` with ``order`` (its ``external_ref`` is kept); None if absent.

    The caller checks that the order may change (it is ``pending``) under a lock first.
    """
    async with translated(), conn.transaction():
        service_s = await default_service_s(conn, org_id)
        values = _values(order, service_s)
        new_service_s = values[_WRITTEN.index("service_s")]
        cursor = await conn.execute(_UPDATE, (*values, new_service_s, org_id, order_id))
        if cursor.rowcount != 1:
            return None
        await _write_parcels(conn, org_id, order_id, order.parcels)
        return await get_order(conn, org_id, order_id)


async def cancel_order(
    conn: AsyncConnection, org_id: OrgId, order_id: OrderId, reason: str | None
) -> Order | None:
    """Cancel order ``order_id`` of ``org_id``; None when there is no such order.

    Cancelling a cancelled order changes nothing and returns it (the first reason stays).
    Raises :class:`~store.delivery.WrongState` for a delivered order. The status test and
    the change are one statement, so a cancel racing a delivery cannot undo the delivery.
    """
    cursor = await conn.execute(
        "UPDATE orders SET status = 'cancelled', cancel_reason = %s, cancelled_at = now(),"
        " updated_at = now() WHERE org_id = %s AND id = %s AND status = ANY(%s)",
        (reason, org_id, order_id, list(_CANCELLABLE_FROM)),
    )
    order = await get_order(conn, org_id, order_id)
    if order is not None and cursor.rowcount == 0 and order.status != "cancelled":
        raise WrongState(
            "status", f"expected an order that is not yet delivered, got status {order.status}"
        )
    return order


async def set_opt_out(
    conn: AsyncConnection, org_id: OrgId, order_id: OrderId, opted_out: bool
) -> Order | None:
    """Whether the customer of order ``order_id`` gets messages, at any status; None if absent."""
    cursor = await conn.execute(
        "UPDATE orders SET notifications_opt_out = %s, updated_at = now()"
        " WHERE org_id = %s AND id = %s",
        (opted_out, org_id, order_id),
    )
    return await get_order(conn, org_id, order_id) if cursor.rowcount == 1 else None


async def set_status(
    conn: AsyncConnection, org_id: OrgId, order_ids: Sequence[OrderId], status: OrderStatus
) -> int:
    """Set the status of orders of ``org_id`` (for planning and dispatch); returns the count."""
    cursor = await conn.execute(
        "UPDATE orders SET status = %s, updated_at = now() WHERE org_id = %s AND id = ANY(%s)",
        (status, org_id, list(order_ids)),
    )
    return cursor.rowcount


# --- bulk import ----------------------------------------------------------------------------

_STAGE: Final = (
    "CREATE TEMP TABLE import_orders (line int NOT NULL, external_ref text NOT NULL,"
    " customer_name text, phone text, email text, language text, address text, lat float8,"
    " lon float8,"
    " day date, window_starts timestamptz[], window_ends timestamptz[], service_s int,"
    " size jsonb, priority smallint, required_skills text[], notes text,"
    " notifications_opt_out boolean, service_s_given boolean) ON COMMIT DROP;"
    " CREATE TEMP TABLE import_parcels (line int NOT NULL, position smallint NOT NULL,"
    " barcode text NOT NULL) ON COMMIT DROP"
)
_MERGE: Final = f"""
WITH inserted AS (
    INSERT INTO orders (org_id, external_ref, {", ".join(_STORED)})
    SELECT %(org)s, external_ref, {", ".join(_STORED)} FROM import_orders ORDER BY line
    ON CONFLICT ON CONSTRAINT orders_org_ref_key DO NOTHING
    RETURNING id, external_ref
), parcel_rows AS (
    INSERT INTO parcels (org_id, order_id, position, barcode)
    SELECT %(org)s, i.id, p.position, p.barcode
    FROM inserted i JOIN import_orders s USING (external_ref) JOIN import_parcels p USING (line)
)
SELECT s.line, i.external_ref, i.id AS order_id
FROM inserted i JOIN import_orders s USING (external_ref)
"""


async def import_orders(
    conn: AsyncConnection, org_id: OrgId, rows: Sequence[tuple[int, OrderIn]]
) -> tuple[list[ImportedRow], list[ImportedRow]]:
    """Create the orders of ``rows`` (line, order) whose ``external_ref`` is new.

    Returns ``(created, duplicates)`` in line order; a duplicate carries the existing order's
    id and was not changed. The refs of ``rows`` must be distinct (the caller reports repeats
    inside one file). Rows are copied into a temporary table and merged with one
    ``INSERT ... ON CONFLICT DO NOTHING``, so two imports of the same file at once still
    create each order once; all of it is one transaction.
    """
    if not rows:
        return [], []
    async with conn.transaction():
        service_s = await default_service_s(conn, org_id)
        await conn.execute(_STAGE)
        async with conn.cursor() as cur:
            async with cur.copy(
                f"COPY import_orders (line, external_ref, {', '.join(_STORED)}) FROM STDIN"
            ) as copy:
                for line, order in rows:
                    await copy.write_row((line, order.external_ref, *_values(order, service_s)))
            async with cur.copy("COPY import_parcels (line, position, barcode) FROM STDIN") as copy:
                for line, order in rows:
                    for position, parcel in enumerate(order.parcels):
                        await copy.write_row((line, position, parcel.barcode))
        merged = await fetch_all(conn, class_row(ImportedRow), _MERGE, {"org": org_id})
        created_refs = {row.external_ref for row in merged}
        others = [order.external_ref for _, order in rows if order.external_ref not in created_refs]
        existing = await order_ids_by_ref(conn, org_id, others)
    created = sorted(merged, key=lambda row: row.line)
    duplicates = [
        ImportedRow(
            line=line, external_ref=order.external_ref, order_id=existing[order.external_ref]
        )
        for line, order in rows
        if order.external_ref in existing
    ]
    return created, duplicates


async def order_ids_by_ref(
    conn: AsyncConnection, org_id: OrgId, refs: Sequence[str]
) -> dict[str, OrderId]:
    """The ids of the orders of ``org_id`` with these external refs (absent ones left out)."""
    cursor = await conn.execute(
        "SELECT external_ref, id FROM orders WHERE org_id = %s AND external_ref = ANY(%s)",
        (org_id, list(refs)),
    )
    return {ref: OrderId(order_id) for ref, order_id in await cursor.fetchall()}


async def unknown_order_ids(
    conn: AsyncConnection, org_id: OrgId, order_ids: Sequence[OrderId]
) -> list[OrderId]:
    """Those of ``order_ids`` that are no order of ``org_id`` (another's, or none), each once,
    in the order given."""
    known = await fetch_all(
        conn,
        scalar_row,
        "SELECT id FROM orders WHERE org_id = %s AND id = ANY(%s)",
        (org_id, list(order_ids)),
    )
    found = set(known)
    return [order_id for order_id in dict.fromkeys(order_ids) if order_id not in found]
