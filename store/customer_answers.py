"""What customers tell us back, and what Twilio reports about our text messages.

* **Opt-outs by phone.** :func:`opt_out` and :func:`opt_in` keep ``sms_opt_outs`` per
  organisation; :func:`is_opted_out` answers for one number, and the notify worker's load step
  (:func:`store.notifications.load_for_decide`) reads the same table for a whole batch. Numbers
  are compared by :func:`phone_key` (digits and a leading ``+``), so ``+49 151 2345-678`` on an
  order matches ``+491512345678`` in Twilio's ``From``.
* **Who a text came from.** :func:`orgs_texting` and :func:`latest_open_order_texted` find, from
  the outbox, the organisations and the order an incoming text answers.
* **Status callbacks.** :func:`apply_sms_status` moves an outbox row found by Twilio's message id.
* **Instructions, other days, ratings.** :func:`save_instructions`, :func:`move_to_day`,
  :func:`rate` and :func:`answers_of`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row, scalar_row

from schemas.customer import (
    AnswerSource,
    CustomerAnswers,
    Instructions,
    InstructionsIn,
    Rating,
    Reschedule,
)
from schemas.ids import OrderId, OrgId, RouteId
from store.proofs import order_state
from store.rows import fetch_all, fetch_one

OPEN_STATUSES: Final = ("pending", "planned", "dispatched")
"""Orders a customer may still give instructions for or move to another day."""

_NOT_PHONE = re.compile(r"[^0-9+]")


def phone_key(phone: str) -> str:
    """A phone number as compared here: its digits and ``+`` signs, nothing else (the SQL
    ``regexp_replace(phone, '[^0-9+]', '', 'g')`` gives the same)."""
    return _NOT_PHONE.sub("", phone)


# --- opt-outs ----------------------------------------------------------------------------------


async def orgs_texting(conn: AsyncConnection[Any], phone: str) -> list[OrgId]:
    """The organisations whose text messages went to ``phone``, by id."""
    rows = await fetch_all(
        conn,
        scalar_row,
        "SELECT DISTINCT org_id FROM outbox WHERE channel = 'sms'"
        " AND regexp_replace(address, '[^0-9+]', '', 'g') = %s ORDER BY org_id",
        (phone_key(phone),),
    )
    return [OrgId(org) for org in rows]


async def opt_out(conn: AsyncConnection[Any], org_ids: Sequence[OrgId], phone: str) -> int:
    """Send ``phone`` nothing more from ``org_ids``; the number of new opt-outs."""
    async with conn.cursor() as cursor:
        await cursor.execute(
            "INSERT INTO sms_opt_outs (org_id, phone) SELECT unnest(%s::bigint[]), %s"
            " ON CONFLICT DO NOTHING",
            (list(org_ids), phone_key(phone)),
        )
        return cursor.rowcount


async def opt_in(conn: AsyncConnection[Any], org_ids: Sequence[OrgId], phone: str) -> int:
    """Undo :func:`opt_out`; the number of opt-outs removed."""
    async with conn.cursor() as cursor:
        await cursor.execute(
            "DELETE FROM sms_opt_outs WHERE org_id = ANY(%s::bigint[]) AND phone = %s",
            (list(org_ids), phone_key(phone)),
        )
        return cursor.rowcount


async def is_opted_out(conn: AsyncConnection[Any], org_id: OrgId, phone: str) -> bool:
    """True when ``phone`` replied STOP to ``org_id`` (and not START since)."""
    found = await fetch_one(
        conn,
        scalar_row,
        "SELECT true FROM sms_opt_outs WHERE org_id = %s AND phone = %s",
        (org_id, phone_key(phone)),
    )
    return found is not None


async def latest_open_order_texted(
    conn: AsyncConnection[Any], phone: str
) -> tuple[OrgId, OrderId] | None:
    """The open order whose customer at ``phone`` was texted last: what a reply answers."""
    row = await fetch_one(
        conn,
        dict_row,
        "SELECT x.org_id, x.order_id FROM outbox x"
        " JOIN orders o ON o.org_id = x.org_id AND o.id = x.order_id"
        " WHERE x.channel = 'sms' AND regexp_replace(x.address, '[^0-9+]', '', 'g') = %s"
        " AND o.status = ANY(%s) ORDER BY x.created_at DESC, x.id DESC LIMIT 1",
        (phone_key(phone), list(OPEN_STATUSES)),
    )
    return None if row is None else (OrgId(row["org_id"]), OrderId(row["order_id"]))


# --- Twilio's status callbacks ------------------------------------------------------------------

_STATE_OF: Final = {"delivered": "delivered", "failed": "failed", "undelivered": "failed"}


async def apply_sms_status(
    conn: AsyncConnection[Any], provider_id: str, status: str, error_code: str | None
) -> None:
    """Move the SMS outbox row Twilio calls ``provider_id`` by a reported ``status``.

    ``delivered`` makes a ``sent`` row ``delivered``; ``failed`` and ``undelivered`` make a
    ``sent`` or ``delivered`` row ``failed`` with Twilio's error code in ``last_error``. The
    others (``queued``, ``sending``, ``sent``, ``accepted``) say no more than ``sent`` does and
    change nothing, and no report moves a row back (callbacks may come out of order). No SMS
    row with that id (yet: a callback can overtake the sender's own record of the id) changes
    nothing either.
    """
    new = _STATE_OF.get(status)
    if new is None:
        return
    error = None
    if new == "failed":
        error = f"Twilio reported {status}" + (f" (error {error_code})" if error_code else "")
    await conn.execute(
        "UPDATE outbox SET state = %s, last_error = coalesce(%s, last_error),"
        " updated_at = now() WHERE provider_id = %s AND channel = 'sms' AND state = ANY(%s)",
        (new, error, provider_id, ["sent"] if new == "delivered" else ["sent", "delivered"]),
    )


# --- instructions ------------------------------------------------------------------------------

_INSTRUCTIONS: Final = "gate_code, leave_at, safe_place_allowed, note, source, updated_at"


async def save_instructions(
    conn: AsyncConnection[Any],
    org_id: OrgId,
    order_id: OrderId,
    given: InstructionsIn,
    source: AnswerSource,
) -> Instructions | None:
    """Replace an open order's instructions; None when the order is not open (or not there)."""
    return await fetch_one(
        conn,
        class_row(Instructions),
        "INSERT INTO customer_instructions (order_id, org_id, gate_code, leave_at,"
        " safe_place_allowed, note, source)"
        " SELECT id, org_id, %s, %s, %s, %s, %s FROM orders"
        " WHERE org_id = %s AND id = %s AND status = ANY(%s)"
        " ON CONFLICT (order_id) DO UPDATE SET gate_code = excluded.gate_code,"
        " leave_at = excluded.leave_at, safe_place_allowed = excluded.safe_place_allowed,"
        " note = excluded.note, source = excluded.source, updated_at = now()"
        f" RETURNING {_INSTRUCTIONS}",
        (
            given.gate_code,
            given.leave_at,
            given.safe_place_allowed,
            given.note,
            source,
            org_id,
            order_id,
            list(OPEN_STATUSES),
        ),
    )


async def instructions_of(
    conn: AsyncConnection[Any], org_id: OrgId, order_id: OrderId
) -> Instructions | None:
    """An order's instructions, if its customer gave any."""
    return await fetch_one(
        conn,
        class_row(Instructions),
        f"SELECT {_INSTRUCTIONS} FROM customer_instructions WHERE org_id = %s AND order_id = %s",
        (org_id, order_id),
    )


# --- another day ---------------------------------------------------------------------------------


async def lock_live_stop(
    conn: AsyncConnection[Any], org_id: OrgId, order_id: OrderId
) -> str | None:
    """The status of the order's live stop (its newest: an order tried again keeps its failed
    stops), locked until the transaction ends (so the driver cannot arrive at it meanwhile);
    None when it has none."""
    status = await fetch_one(
        conn,
        scalar_row,
        "SELECT status FROM stops WHERE org_id = %s AND order_id = %s AND status <> 'removed'"
        " ORDER BY id DESC LIMIT 1 FOR UPDATE",
        (org_id, order_id),
    )
    return None if status is None else str(status)


async def move_to_day(
    conn: AsyncConnection[Any],
    org_id: OrgId,
    order_id: OrderId,
    to_day: date,
    route_id: RouteId | None,
    source: AnswerSource,
) -> Reschedule | None:
    """Put an open order back for planning on ``to_day`` and record the request.

    Its time windows move by as many days as the order does (a 14:00-16:00 window stays
    14:00-16:00). The caller takes the order's stop off its route in the same transaction.
    None when the order is no longer open.
    """
    row = await fetch_one(
        conn,
        dict_row,
        "WITH old AS (SELECT id, day FROM orders WHERE org_id = %(org)s AND id = %(order)s"
        "   AND status = ANY(%(open)s) FOR UPDATE)"
        " UPDATE orders o SET day = %(to)s, status = 'pending', updated_at = now(),"
        "   window_starts = ARRAY(SELECT w + (%(to)s::date - old.day) * interval '1 day'"
        "     FROM unnest(o.window_starts) WITH ORDINALITY AS u (w, n) ORDER BY n),"
        "   window_ends = ARRAY(SELECT w + (%(to)s::date - old.day) * interval '1 day'"
        "     FROM unnest(o.window_ends) WITH ORDINALITY AS u (w, n) ORDER BY n)"
        " FROM old WHERE o.id = old.id RETURNING old.day AS from_day",
        {"org": org_id, "order": order_id, "open": list(OPEN_STATUSES), "to": to_day},
    )
    if row is None:
        return None
    return await fetch_one(
        conn,
        class_row(Reschedule),
        "INSERT INTO reschedules (org_id, order_id, from_day, to_day, route_id, source)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " RETURNING order_id, from_day, to_day, route_id, source, created_at",
        (org_id, order_id, row["from_day"], to_day, route_id, source),
    )


# --- ratings ------------------------------------------------------------------------------------

_RATING: Final = "order_id, driver_id, route_id, stars, comment, created_at"


async def rate(
    conn: AsyncConnection[Any], org_id: OrgId, order_id: OrderId, stars: int, comment: str | None
) -> Rating | None:
    """Store a delivered order's rating with the driver who delivered it; None when the order
    is not delivered or already rated (the order's status tells which)."""
    return await fetch_one(
        conn,
        class_row(Rating),
        "INSERT INTO ratings (order_id, org_id, driver_id, route_id, stars, comment)"
        " SELECT o.id, o.org_id, r.driver_id, s.route_id, %s, %s FROM orders o"
        " LEFT JOIN stops s ON s.org_id = o.org_id AND s.order_id = o.id"
        "   AND s.status = 'delivered'"
        " LEFT JOIN routes r ON r.id = s.route_id"
        " WHERE o.org_id = %s AND o.id = %s AND o.status = 'delivered'"
        f" ORDER BY s.completed_at DESC NULLS LAST LIMIT 1 ON CONFLICT DO NOTHING"
        f" RETURNING {_RATING}",
        (stars, comment, org_id, order_id),
    )


async def answers_of(
    conn: AsyncConnection[Any], org_id: OrgId, order_id: OrderId
) -> CustomerAnswers | None:
    """Everything an order's customer said; None when ``org_id`` has no such order."""
    state = await order_state(conn, org_id, order_id)
    if state is None:
        return None
    instructions = await instructions_of(conn, org_id, order_id)
    reschedules = await fetch_all(
        conn,
        class_row(Reschedule),
        "SELECT order_id, from_day, to_day, route_id, source, created_at FROM reschedules"
        " WHERE org_id = %s AND order_id = %s ORDER BY created_at, id",
        (org_id, order_id),
    )
    rating = await fetch_one(
        conn,
        class_row(Rating),
        f"SELECT {_RATING} FROM ratings WHERE org_id = %s AND order_id = %s",
        (org_id, order_id),
    )
    return CustomerAnswers(
        order_id=order_id,
        instructions=instructions,
        reschedules=reschedules,
        rating=rating,
        can_rate=state[0] == "delivered" and rating is None,
    )
