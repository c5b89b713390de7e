"""The customer answers back: delivery instructions, another day, a rating.

From the tracking page, authenticated by the link's token (:func:`app.api.tracking.order_of_link`):

* ``POST /v1/track/{token}/instructions`` replaces the order's instructions (gate code, where to
  leave the parcel, whether a safe place is allowed, a note) while the order is open. When the
  order is on a running route, the driver's app gets the route again at once with the
  instructions on the stop, and a ``route_changed`` event (``change: instructions``) shows it
  to dispatchers.
* ``POST /v1/track/{token}/reschedule`` asks for another day: the order is pending again on that
  day (its windows moved with it), its stop leaves today's route through the re-optimisation
  that cancelling uses (the rest re-timed at the speeds the route was planned with, the driver
  told), and an ``order_rescheduled`` event is on the events stream.
* ``POST /v1/track/{token}/rating``: once the order is delivered, 1 to 5 stars and a comment,
  once (a second is 409); stored with the driver who delivered.
* ``GET /v1/track/{token}/answers``: what the customer said so far (for the page).

Dispatchers read the same with ``GET /v1/orders/{order_id}/answers`` (any API key). Replies by
text message (:mod:`app.api.sms_inbound`) go through :func:`give_instructions` and
:func:`reschedule` too.

Customer text is untrusted: the schema limits each field's length, :func:`check_text` refuses
control characters (400 naming the field), and it is stored as text; the pages show it with
``textContent``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from app.api.running import announce, state, travel_of, write
from app.api.tracking import order_of_link
from app.auth import READERS
from app.errors import Conflict, InvalidField, NotFound
from app.http import answer, decode, path_id, request_body, resources_of
from app.resources import Resources
from schemas.customer import (
    AnswerSource,
    CustomerAnswers,
    Instructions,
    InstructionsIn,
    RatingIn,
    Reschedule,
    RescheduleIn,
    control_character,
)
from schemas.events import OrderRescheduled
from schemas.ids import OrderId, OrgId, RouteId
from schemas.planning import OrderRef
from solver.reoptimize import retime, without_stop
from store import customer_answers as store
from store import routes as route_store
from store.delivery import org_settings
from store.proofs import order_state

RUNNING = ("dispatched", "started")


def check_text(value: object, *, multiline_fields: frozenset[str] = frozenset()) -> None:
    """Refuse control characters in any text field of a decoded body (400 naming the field)."""
    for name in getattr(value, "__struct_fields__", ()):
        text = getattr(value, name)
        if isinstance(text, str):
            found = control_character(text, multiline=name in multiline_fields)
            if found is not None:
                raise InvalidField(name, f"expected text without control characters, got {found}")


async def _order(request: Request) -> tuple[Resources, OrgId, OrderId]:
    resources = resources_of(request)
    org_id, order_id = await order_of_link(resources, request.path_params["token"])
    return resources, org_id, order_id


# --- instructions --------------------------------------------------------------------------------


async def give_instructions(
    resources: Resources,
    org_id: OrgId,
    order_id: OrderId,
    given: InstructionsIn,
    source: AnswerSource,
) -> Instructions:
    """Store an open order's instructions and, when it is on a running route, send the driver
    the route with them; 409 when the order is no longer open."""
    async with resources.pool.connection() as conn:
        saved = await store.save_instructions(conn, org_id, order_id, given, source)
        if saved is None:
            raise Conflict("order", "the delivery has ended: no instructions can be given now")
        found = await route_store.live_stop_of_order(conn, org_id, order_id)
        if found is not None and found[2] in ("pending", "arrived"):
            head = await route_store.route_head(conn, org_id, found[1])
            if head is not None and head.status in RUNNING:
                await announce(conn, resources, org_id, [(found[1], "instructions", order_id)])
    return saved


async def post_instructions(request: Request) -> Response:
    """``POST /v1/track/{token}/instructions``."""
    resources, org_id, order_id = await _order(request)
    body = await request_body(request)
    given = decode(body, request.headers.get("content-type"), InstructionsIn)
    check_text(given, multiline_fields=frozenset({"note", "leave_at"}))
    return answer(await give_instructions(resources, org_id, order_id, given, "page"))


# --- another day ---------------------------------------------------------------------------------


async def check_day(resources: Resources, org_id: OrgId, day: date) -> None:
    """Refuse a day that is not after today in the organisation's time zone, or too far out."""
    today = await today_of(resources, org_id)
    last = today + timedelta(days=resources.settings.reschedule_max_days)
    if not today < day <= last:
        raise InvalidField(
            "day", f"expected a day from {today + timedelta(days=1)} to {last}, got {day}"
        )


async def today_of(resources: Resources, org_id: OrgId) -> date:
    """The organisation's date now."""
    async with resources.pool.connection() as conn:
        zone = (await org_settings(conn, org_id)).timezone
    return datetime.now(ZoneInfo(zone)).date()


async def reschedule(
    resources: Resources, org_id: OrgId, order_id: OrderId, day: date, source: AnswerSource
) -> Reschedule:
    """Move an open order to ``day``: off its running route (re-timed, the driver told), back
    for planning, and an ``order_rescheduled`` event. 409 when the driver is already at the
    door, the delivery has ended, or the order is on that day already."""
    await check_day(resources, org_id, day)
    async with resources.pool.connection() as conn:
        current = await order_state(conn, org_id, order_id)
        if current is None:
            raise NotFound("unknown tracking link")
        status, old_day = current
        if status not in store.OPEN_STATUSES:
            raise Conflict("day", f"the delivery has ended ({status}): it cannot move now")
        if old_day == day:
            raise Conflict("day", f"the delivery is already planned for {day}")
        found = await route_store.live_stop_of_order(conn, org_id, order_id)
        route_id: RouteId | None = None
        # An open order whose newest stop failed is being tried again and is on no route yet.
        if found is not None and found[2] != "failed":
            if found[2] != "pending":
                raise Conflict("day", f"the driver has already reached this stop ({found[2]})")
            route_id = found[1]
        st = timeline = None
        if route_id is not None:
            # The cancel path of the re-optimisation: take the stop out and re-time the rest.
            st = await state(conn, resources, org_id, route_id)
            rest = without_stop(st.route, OrderRef(str(order_id)))
            travel = await travel_of(conn, resources, org_id, [st])
            timeline = await resources.solver.run(retime, rest, travel=travel)
        async with conn.transaction():
            if st is not None and timeline is not None:
                # Locked, so the driver cannot reach the stop between this check and the move.
                if await store.lock_live_stop(conn, org_id, order_id) != "pending":
                    raise Conflict("day", "the driver has already reached this stop")
                await write(conn, st, timeline, removed=[order_id])
            moved = await store.move_to_day(conn, org_id, order_id, day, route_id, source)
            if moved is None:
                raise Conflict("day", "the delivery changed meanwhile; try again")
        event = OrderRescheduled(
            org_id=org_id,
            at=moved.created_at,
            order_id=order_id,
            from_day=moved.from_day,
            to_day=moved.to_day,
            route_id=route_id,
            source=source,
        )
        changes = [] if route_id is None else [(route_id, "stop_removed", order_id)]
        await announce(conn, resources, org_id, changes, extra=[event])
    return moved


async def post_reschedule(request: Request) -> Response:
    """``POST /v1/track/{token}/reschedule``."""
    resources, org_id, order_id = await _order(request)
    body = await request_body(request)
    wanted = decode(body, request.headers.get("content-type"), RescheduleIn)
    return answer(await reschedule(resources, org_id, order_id, wanted.day, "page"))


# --- rating --------------------------------------------------------------------------------------


async def post_rating(request: Request) -> Response:
    """``POST /v1/track/{token}/rating``: 201 once; 409 before the delivery or when rated."""
    resources, org_id, order_id = await _order(request)
    body = await request_body(request)
    given = decode(body, request.headers.get("content-type"), RatingIn)
    check_text(given, multiline_fields=frozenset({"comment"}))
    async with resources.pool.connection() as conn:
        rating = await store.rate(conn, org_id, order_id, given.stars, given.comment)
        if rating is None:
            # Not delivered, or delivered and rated already: the order's status tells which.
            current = await order_state(conn, org_id, order_id)
            if current is not None and current[0] == "delivered":
                raise Conflict("stars", "this delivery has been rated already")
            raise Conflict("stars", "only a delivered order can be rated")
    return answer(rating, 201)


# --- reads ---------------------------------------------------------------------------------------


async def _answers(resources: Resources, org_id: OrgId, order_id: OrderId) -> CustomerAnswers:
    async with resources.pool.connection() as conn:
        found = await store.answers_of(conn, org_id, order_id)
    if found is None:
        raise NotFound(f"no order {order_id} in this organisation")
    return found


async def get_track_answers(request: Request) -> Response:
    """``GET /v1/track/{token}/answers``: what this customer said, for the page."""
    resources, org_id, order_id = await _order(request)
    response = answer(await _answers(resources, org_id, order_id))
    response.headers["cache-control"] = "no-store"
    return response


async def get_order_answers(request: Request) -> Response:
    """``GET /v1/orders/{order_id}/answers``: what the order's customer said (any API key)."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    order_id = OrderId(path_id(request, "order_id"))
    return answer(await _answers(resources, principal.org_id, order_id))
