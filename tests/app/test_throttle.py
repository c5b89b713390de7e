"""Failed credentials are rate-limited per address, counted in Redis for every process."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from app.errors import TooManyFailures
from app.settings import Settings, SettingsError
from app.throttle import FailedCredentials
from tests.conftest import LiveServer, Tenant

LIMIT = "5/minute"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This module's servers allow five failed credentials a minute per address."""
    return msgspec.structs.replace(settings, auth_failure_limit=LIMIT)


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_an_address_that_keeps_failing_is_refused_for_the_window(
    http: httpx.AsyncClient, server: LiveServer, settings: Settings, tenant: Tenant
) -> None:
    """Five bad credentials (keys, device tokens, an OsmAnd id) answer 401; the sixth 429 with
    Retry-After, and then so does a good key from that address; another process, sharing the
    counts, refuses the address at its next failure."""
    failures = [
        await http.get("/v1/orders", headers=auth("lmk_wrong-1")),
        await http.get("/v1/orders", headers=auth("lmk_wrong-2")),
        await http.post("/v1/pings", json={"pings": []}, headers=auth("lmd_wrong-3")),
        await http.get("/v1/orders", headers=auth("lmk_wrong-4")),
    ]
    async with httpx.AsyncClient(base_url=server.osmand_url) as osmand:
        failures.append(await osmand.get("/", params={"id": "lmd_wrong-5", "lat": 1, "lon": 1}))
    assert [f.status_code for f in failures] == [401, 401, 401, 401, 401]
    refused = await http.get("/v1/orders", headers=auth("lmk_wrong-6"))
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_failures"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    good = await http.get("/v1/orders", headers=auth(tenant.api_key))
    assert good.status_code == 429

    redis = Redis.from_url(settings.redis_url or "")
    try:
        url = settings.redis_url or ""
        other = FailedCredentials(redis, url, prefix=settings.redis_prefix, limit=LIMIT)
        other.check("127.0.0.1")  # this process has not seen the address fail yet
        with pytest.raises(TooManyFailures):
            await other.failed("127.0.0.1")
        other.check("10.0.0.9")
        await other.failed("10.0.0.9")  # another address keeps its own count
    finally:
        await redis.aclose()


def test_a_limit_that_does_not_parse_fails_naming_the_variable() -> None:
    """``LASTMILE_AUTH_FAILURE_LIMIT`` is checked where it is read."""
    with pytest.raises(SettingsError, match="LASTMILE_AUTH_FAILURE_LIMIT"):
        Settings.from_env({"LASTMILE_AUTH_FAILURE_LIMIT": "lots"})
