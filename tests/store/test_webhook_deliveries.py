"""store.webhook_deliveries on real PostgreSQL: what recording an attempt does when the sender
no longer holds the delivery, or the delivery is gone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from schemas.ids import OrgId
from store import webhook_deliveries as deliveries
from store import webhooks
from store.webhook_deliveries import NewDelivery, Outcome
from tests.conftest import Tenant


async def _one(db: psycopg.AsyncConnection, org_id: OrgId) -> tuple[int, int]:
    endpoint = await webhooks.create(
        db,
        org_id,
        url="http://127.0.0.1:9/x",
        secret="whsec_" + "A" * 44,
        event_types=["*"],
        description="",
        enabled=True,
    )
    now = datetime.now(UTC)
    await deliveries.insert_deliveries(
        db,
        [
            NewDelivery(
                org_id=org_id,
                endpoint_id=endpoint.id,
                event_id=f"1-{endpoint.id}",
                event_type="stop_delivered",
                event_at=now,
                webhook_id=f"msg_1-{endpoint.id}_{endpoint.id}",
                body=b"{}",
            )
        ],
    )
    [delivery] = await webhooks.list_deliveries(db, org_id, endpoint.id, before=None, limit=1)
    return endpoint.id, delivery.id


def _outcome(endpoint_id: int, delivery_id: int, attempt: int, **result: Any) -> Outcome:
    """An attempt that took 3 ms just now, with ``result`` (outcome, state, status code…)."""
    now = datetime.now(UTC)
    return Outcome(
        delivery_id=delivery_id,
        endpoint_id=endpoint_id,
        attempt=attempt,
        started_at=now,
        finished_at=now,
        latency_ms=3,
        **result,
    )


def _failed(endpoint_id: int, delivery_id: int, attempt: int) -> Outcome:
    return _outcome(
        endpoint_id,
        delivery_id,
        attempt,
        outcome="failed",
        status_code=400,
        error="no",
        state="dead",
    )


async def test_an_attempt_of_a_taken_over_delivery_is_logged_but_moves_nothing(
    db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """A sender whose lease ran out (the delivery was claimed again since) stores its attempt in
    the log, but neither the delivery's state nor the endpoint's failures change."""
    endpoint_id, delivery_id = await _one(db, tenant.org_id)
    try:
        for _ in range(2):  # claimed, lease run out, claimed again: attempt 2 holds it
            claimed = await deliveries.claim_due(db, 100, 0.0)
            assert delivery_id in {c.id for c in claimed}
        moved, change = await deliveries.record_attempt(
            db, _failed(endpoint_id, delivery_id, 1), disable_after=1
        )
        assert (moved, change) == (False, "none")
        found = await webhooks.get_delivery(db, tenant.org_id, endpoint_id, delivery_id)
        assert found is not None
        assert found.state == "sending"
        assert [a.attempt for a in found.attempts] == [1]
        endpoint = await webhooks.get(db, tenant.org_id, endpoint_id)
        assert endpoint is not None
        assert (endpoint.enabled, endpoint.consecutive_failures) == (True, 0)
    finally:
        await webhooks.delete(db, tenant.org_id, endpoint_id)


async def test_an_attempt_of_a_deleted_endpoint_is_dropped_without_an_error(
    db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """An endpoint deleted while its delivery was being sent takes its log along; the sender's
    record of that attempt stores nothing and raises nothing."""
    endpoint_id, delivery_id = await _one(db, tenant.org_id)
    [claimed] = [c for c in await deliveries.claim_due(db, 100, 60.0) if c.id == delivery_id]
    assert await webhooks.delete(db, tenant.org_id, endpoint_id)
    moved, change = await deliveries.record_attempt(
        db, _failed(endpoint_id, delivery_id, claimed.attempts), disable_after=1
    )
    assert (moved, change) == (False, "none")
    cursor = await db.execute(
        "SELECT count(*) FROM webhook_attempts WHERE delivery_id = %s", (delivery_id,)
    )
    assert await cursor.fetchone() == (0,)


def _delivered(endpoint_id: int, delivery_id: int, attempt: int) -> Outcome:
    return _outcome(
        endpoint_id,
        delivery_id,
        attempt,
        outcome="delivered",
        status_code=204,
        address="127.0.0.1",
        state="delivered",
    )


async def test_a_delivered_batch_is_recorded_as_one_attempt_at_a_time_would_be(
    db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """A batch of delivered attempts (recorded set-wise) moves the deliveries this sender still
    holds, ends their endpoints' runs of failures, logs a taken-over one without moving it, and
    drops the one whose endpoint was deleted."""
    held_endpoint, held = await _one(db, tenant.org_id)
    taken_endpoint, taken = await _one(db, tenant.org_id)
    gone_endpoint, gone = await _one(db, tenant.org_id)
    await db.execute(
        "UPDATE webhook_endpoints SET consecutive_failures = 3 WHERE id = ANY(%s)",
        ([held_endpoint, taken_endpoint],),
    )
    try:
        first = {c.id: c.attempts for c in await deliveries.claim_due(db, 100, 0.0)}
        assert {held, taken, gone} <= first.keys()
        # The taken-over one is claimed again (its lease ran out); the others are held anew.
        await db.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour'"
            " WHERE id = ANY(%s)",
            ([held, gone],),
        )
        again = {c.id: c.attempts for c in await deliveries.claim_due(db, 100, 60.0)}
        assert taken in again
        assert held not in again
        assert await webhooks.delete(db, tenant.org_id, gone_endpoint)
        results = await deliveries.record_attempts(
            db,
            [
                _delivered(held_endpoint, held, first[held]),
                _delivered(taken_endpoint, taken, first[taken]),
                _delivered(gone_endpoint, gone, first[gone]),
            ],
            disable_after=5,
        )
        assert results == [(True, "none"), (False, "none"), (False, "none")]
        found = await webhooks.get_delivery(db, tenant.org_id, held_endpoint, held)
        assert found is not None
        assert found.state == "delivered"
        assert [(a.attempt, a.outcome, a.status_code) for a in found.attempts] == [
            (first[held], "delivered", 204)
        ]
        other = await webhooks.get_delivery(db, tenant.org_id, taken_endpoint, taken)
        assert other is not None
        assert other.state == "sending"
        assert [a.attempt for a in other.attempts] == [first[taken]]
        cursor = await db.execute(
            "SELECT id, consecutive_failures FROM webhook_endpoints WHERE id = ANY(%s) ORDER BY id",
            ([held_endpoint, taken_endpoint],),
        )
        assert await cursor.fetchall() == [(held_endpoint, 0), (taken_endpoint, 3)]
        cursor = await db.execute(
            "SELECT count(*) FROM webhook_attempts WHERE delivery_id = %s", (gone,)
        )
        assert await cursor.fetchone() == (0,)
    finally:
        await webhooks.delete(db, tenant.org_id, held_endpoint)
        await webhooks.delete(db, tenant.org_id, taken_endpoint)
