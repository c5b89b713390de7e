"""The plan queue in PostgreSQL: organisations served in turn, one running plan each, leases
taken over, plans that keep losing their planner failed, and cancels."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta

import psycopg

from schemas.ids import OrgId, PlanId
from store import plans
from tests.conftest import make_tenant

DAY = date(2026, 12, 1)
LEASE = timedelta(seconds=60)


async def claim(
    conn: psycopg.AsyncConnection,
    orgs: Collection[OrgId],
    planner: str = "p1",
    lease: timedelta = LEASE,
) -> plans.PlanRow | None:
    """The next plan ``planner`` claims among ``orgs``' plans; plans other tests of the session
    left waiting are failed on the way, so they cannot stand in the queue of this one."""
    while True:
        plan = await plans.claim_next(conn, planner, lease)
        if plan is None or plan.org_id in orgs:
            return plan
        await plans.fail_plan(conn, plan.id, "left waiting by another test")


async def queue(conn: psycopg.AsyncConnection, org_id: OrgId, n: int) -> list[PlanId]:
    return [(await plans.create_plan(conn, org_id, DAY, {}, None)).id for _ in range(n)]


async def finish(conn: psycopg.AsyncConnection, plan: plans.PlanRow | None) -> None:
    assert plan is not None
    assert await plans.finish_plan(conn, plan.id, "p1", {}, {}) == "done"


async def test_organisations_are_served_in_turn_one_running_plan_each(
    db: psycopg.AsyncConnection,
) -> None:
    """Three plans of A queued before one of B and one of C start A, B, C, A, A: each
    organisation waits behind at most one plan of each other, and A never runs two at once."""
    a, b, c = [(await make_tenant(db, drivers=0)).org_id for _ in range(3)]
    a_plans = await queue(db, a, 3)
    (b_plan,) = await queue(db, b, 1)
    (c_plan,) = await queue(db, c, 1)
    orgs = {a, b, c}
    first = await claim(db, orgs)
    second = await claim(db, orgs, planner="p2")
    third = await claim(db, orgs, planner="p3")
    assert [p.id for p in (first, second, third) if p] == [a_plans[0], b_plan, c_plan]
    assert await claim(db, orgs, planner="p4") is None  # A's next waits for A's running one
    await finish(db, first)
    fourth = await claim(db, orgs)
    assert fourth is not None
    assert fourth.id == a_plans[1]
    await finish(db, fourth)
    fifth = await claim(db, orgs)
    assert fifth is not None
    assert fifth.id == a_plans[2]


async def test_an_organisation_served_longest_ago_goes_first(
    db: psycopg.AsyncConnection,
) -> None:
    """After A's plan ran, a plan A queues before B's next one still starts after it."""
    a, b = [(await make_tenant(db, drivers=0)).org_id for _ in range(2)]
    orgs = {a, b}
    await queue(db, b, 1)
    await finish(db, await claim(db, orgs))  # B was served first...
    await queue(db, a, 1)
    await finish(db, await claim(db, orgs))  # ...then A
    (a_next,) = await queue(db, a, 1)
    (b_next,) = await queue(db, b, 1)
    first = await claim(db, orgs)
    assert first is not None
    assert first.id == b_next
    await finish(db, first)
    second = await claim(db, orgs)
    assert second is not None
    assert second.id == a_next


async def test_a_lost_plan_is_taken_over_first_and_fails_after_max_claims(
    db: psycopg.AsyncConnection,
) -> None:
    """A running plan whose lease ran out is claimed again before any queued plan, by another
    planner (the first can no longer renew or store it), and after MAX_CLAIMS starts it fails
    saying why instead of starting again."""
    org = (await make_tenant(db, drivers=0)).org_id
    (lost_id,) = await queue(db, org, 1)
    (next_id,) = await queue(db, org, 1)
    holder = "p0"
    for n in range(1, plans.MAX_CLAIMS + 1):
        plan = await claim(db, {org}, planner=f"p{n}", lease=timedelta(0))
        assert plan is not None
        assert (plan.id, plan.claims) == (lost_id, n)
        assert await plans.renew_lease(db, lost_id, holder, LEASE) == "lost"
        holder = f"p{n}"
    taken = await claim(db, {org})
    assert taken is not None
    assert taken.id == next_id
    failed = await plans.get_plan(db, org, lost_id)
    assert failed is not None
    assert failed.status == "failed"
    assert failed.error == (
        f"the planner gave up on this plan: its planner stopped without an answer"
        f" {plans.MAX_CLAIMS} times while computing it"
    )


async def test_a_released_plan_waits_again_without_losing_a_claim(
    db: psycopg.AsyncConnection,
) -> None:
    """A plan its stopping planner puts back is queued with no start recorded, and its next
    start is counted as its first."""
    org = (await make_tenant(db, drivers=0)).org_id
    (plan_id,) = await queue(db, org, 1)
    assert await claim(db, {org}) is not None
    assert await plans.release_plan(db, plan_id, "p1")
    waiting = await plans.get_plan(db, org, plan_id)
    assert waiting is not None
    assert (waiting.status, waiting.started_at, waiting.claims) == ("queued", None, 0)
    again = await claim(db, {org}, planner="p2")
    assert again is not None
    assert (again.id, again.claims) == (plan_id, 1)


async def test_cancel_ends_a_queued_plan_and_asks_a_running_one_to_stop(
    db: psycopg.AsyncConnection,
) -> None:
    """A queued plan is cancelled at once and never claimed; a running one is flagged, its
    planner's next renewal says stop, and its result is then stored as cancelled."""
    org = (await make_tenant(db, drivers=0)).org_id
    running_id, queued_id = await queue(db, org, 2)
    assert await claim(db, {org}) is not None
    queued = await plans.cancel_plan(db, org, queued_id)
    assert queued is not None
    assert queued.status == "cancelled"
    assert queued.finished_at is not None
    running = await plans.cancel_plan(db, org, running_id)
    assert running is not None
    assert running.status == "running"
    assert running.cancel_requested_at is not None
    again = await plans.cancel_plan(db, org, running_id)
    assert again is not None
    assert again.cancel_requested_at == running.cancel_requested_at
    assert await plans.renew_lease(db, running_id, "p1", LEASE) == "cancel"
    assert await plans.finish_plan(db, running_id, "p1", {"routes": []}, {}) == "cancelled"
    assert await claim(db, {org}) is None


async def test_a_cancelled_plan_whose_planner_was_lost_ends_cancelled(
    db: psycopg.AsyncConnection,
) -> None:
    """A running plan with a cancel request and no planner left is not started again: the
    next claim ends it cancelled, saying no routes were kept."""
    org = (await make_tenant(db, drivers=0)).org_id
    (plan_id,) = await queue(db, org, 1)
    assert await claim(db, {org}, lease=timedelta(0)) is not None
    await plans.cancel_plan(db, org, plan_id)
    assert await claim(db, {org}) is None
    ended = await plans.get_plan(db, org, plan_id)
    assert ended is not None
    assert (ended.status, ended.result) == ("cancelled", None)
    assert ended.error == "cancelled while its planner was lost; no routes were kept"


async def test_another_organisations_plan_cannot_be_cancelled(
    db: psycopg.AsyncConnection,
) -> None:
    """Cancelling with the wrong organisation finds nothing and changes nothing."""
    org, other = [(await make_tenant(db, drivers=0)).org_id for _ in range(2)]
    (plan_id,) = await queue(db, org, 1)
    assert await plans.cancel_plan(db, other, plan_id) is None
    kept = await plans.get_plan(db, org, plan_id)
    assert kept is not None
    assert (kept.status, kept.cancel_requested_at) == ("queued", None)


async def test_a_plan_whose_cancel_was_asked_for_is_not_released(
    db: psycopg.AsyncConnection,
) -> None:
    """A stopping planner cannot put back a plan whose cancel was asked for: it stays running
    for the planner to store what it found as cancelled."""
    org = (await make_tenant(db, drivers=0)).org_id
    (plan_id,) = await queue(db, org, 1)
    assert await claim(db, {org}) is not None
    await plans.cancel_plan(db, org, plan_id)
    assert not await plans.release_plan(db, plan_id, "p1")
    assert await plans.finish_plan(db, plan_id, "p1", {"routes": []}, {}) == "cancelled"
