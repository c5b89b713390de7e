"""Fuzzing the live API from its own reference (schemathesis), with real credentials.

Every operation of ``/openapi.json`` gets its documented examples, schemathesis's coverage cases
(boundaries, missing and wrong-typed fields, each parameter left out) and a bounded number of
generated cases, valid and invalid, against a real server on real PostgreSQL and Redis, as an
admin API key and a driver's device. Each answer must:

* not be a 5xx (``not_a_server_error``); 503 is excused only as what it is documented to be,
  so the backing services must stay up for the run;
* have a documented status, content type, headers and body (``status_code_conformance``,
  ``content_type_conformance``, ``response_headers_conformance``,
  ``response_schema_conformance``);
* refuse what the schema calls invalid with a 4xx (``negative_data_rejection``) and answer
  401 without the credential (``ignored_auth``);
* when it is an error, be the one error body with a reason, and name the field of a 400, 413,
  415 or 422 (:func:`error_names_field_and_reason`).

Not checked: ``positive_data_acceptance`` (a body valid under its schema may still break a rule
the schema cannot state: a window outside its order's day, a dimension the organisation lacks,
an id of another organisation; those are 400s naming the field, which the check above holds to
account), and the stateful checks (no links between operations are declared).

The server runs in a thread with its own event loop, because schemathesis calls it
synchronously. Run with ``scripts/fuzz`` (``pytest -m fuzz``); ``LASTMILE_FUZZ_EXAMPLES`` sets
the generated cases per operation (default 50).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msgspec
import psycopg
import pytest
import schemathesis
from hypothesis import reject
from schemathesis import Case, CheckContext, Response

from app.api.reference import document
from app.errors import ErrorBody
from app.main import create_app
from app.process.embedded import ServiceUrls
from app.process.server import serve_api
from app.settings import Settings
from tests.conftest import Tenant, bound_socket, make_tenant

T = TypeVar("T")

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("LASTMILE_FUZZ_EXAMPLES", "50"))
NAMES_A_FIELD = frozenset({400, 413, 415, 422})
"""Refusals of what the request carries: the error body must say which field."""
MSGPACK = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")


# --- the server, in a thread of its own ------------------------------------------------------


class ThreadedServer:
    """The real API (uvicorn, both listeners) on its own event loop in a thread."""

    def __init__(self, settings: Settings, sockets: tuple[socket.socket, socket.socket]) -> None:
        self.settings = settings
        self.sockets = sockets
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, name="fuzzed-api", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread, which is waiting
            self.failed = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        await serve_api(self.settings, self.stop, on_ready=self.ready.set, sockets=self.sockets)

    def start(self) -> None:
        """Start serving; returns once both listeners accept connections."""
        self.thread.start()
        if not self.ready.wait(timeout=60) or self.failed is not None:
            raise RuntimeError(f"the API did not start: {self.failed!r}")

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        if self.loop is not None and self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"


@dataclass(frozen=True)
class Fuzzed:
    """The running server, its organisation's credentials, and the schema to fuzz it with."""

    server: ThreadedServer
    tenant: Tenant
    schema: Any


async def _admin_tenant(database_url: str) -> Tenant:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        return await make_tenant(conn, drivers=2, role="admin")


def _seed(url: str, api_key: str) -> None:
    """Objects for the generated ids to find: small ids exist, so handlers go past their 404."""
    headers = {"authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        depot = client.post("/v1/depots", json={"name": "Mitte", "lat": 52.53, "lon": 13.37})
        vehicle = client.post("/v1/vehicles", json={"name": "Van 1", "capacity": {"parcels": 50}})
        drivers = client.get("/v1/drivers").json()["drivers"]
        for n, driver in enumerate(drivers):
            client.post(
                "/v1/shifts",
                json={
                    "driver_id": driver["id"],
                    "vehicle_id": vehicle.json()["id"],
                    "day": "2026-11-24",
                    "start_place": {"depot_id": depot.json()["id"]},
                    "working_window": {
                        "start": f"2026-11-24T0{7 + n}:00:00Z",
                        "end": "2026-11-24T16:00:00Z",
                    },
                },
            ).raise_for_status()
        for n in range(5):
            order = client.post(
                "/v1/orders",
                json={
                    "external_ref": f"SEED-{n}",
                    "address": f"Torstraße {n + 1}, Berlin",
                    "lat": 52.529 + n / 1000,
                    "lon": 13.401,
                    "day": "2026-11-24",
                    "size": {"parcels": 1},
                },
            )
            order.raise_for_status()
        client.post(f"/v1/orders/{order.json()['id']}/tracking").raise_for_status()
        client.post("/v1/plans", json={"day": "2026-11-24", "time_limit_s": 1}).raise_for_status()


def _config(tenant: Tenant) -> schemathesis.Config:
    token = tenant.drivers[0].token
    return schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": EXAMPLES, "mode": "all", "deterministic": True},
            # Methods a path does not have are refused by the router, not the handlers; one
            # test below holds that answer to the error body, instead of every operation here.
            "phases": {"stateful": {"enabled": False}, "coverage": {"unexpected-methods": []}},
            "checks": {
                "positive_data_acceptance": {"enabled": False},
            },
            "request-timeout": 30,
            "continue-on-failure": True,
            "auth": {
                "openapi": {
                    "apiKey": {"bearer": tenant.api_key},
                    "deviceToken": {"bearer": token},
                    "ownTracksBasic": {"username": "fuzz", "password": token},
                    "osmandId": {"api_key": token},
                }
            },
        }
    )


@pytest.fixture(scope="module")
def fuzzed(
    service_urls: ServiceUrls, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fuzzed]:
    """A server with a seeded admin organisation, and its reference loaded as schemathesis's."""
    sockets = (bound_socket(), bound_socket())
    settings = Settings(
        database_url=database_url,
        redis_url=service_urls.redis_url,
        data_dir=tmp_path_factory.mktemp("fuzz"),
        port=sockets[0].getsockname()[1],
        osmand_port=sockets[1].getsockname()[1],
        redis_prefix=f"fuzz-{secrets.token_hex(4)}:",
        warm_solver=False,
        # Every case comes from one address and many carry no valid credential on purpose: at
        # the production limit the address would be refused (429) for everything after a
        # few dozen. test_throttle.py checks the limit.
        auth_failure_limit="1000000/minute",
    )
    server = ThreadedServer(settings, sockets)
    server.start()
    try:
        tenant = server.run(_admin_tenant(database_url))
        _seed(server.url, tenant.api_key)
        spec = document(list(create_app(settings).routes))
        spec["servers"] = [{"url": server.url}]
        yield Fuzzed(server, tenant, schemathesis.openapi.from_dict(spec, config=_config(tenant)))
    finally:
        server.close()
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def api_schema(fuzzed: Fuzzed) -> Any:
    """The reference of the fuzzed server, for schemathesis."""
    return fuzzed.schema


# --- what schemathesis needs to speak and read lastmile --------------------------------------


@schemathesis.serializer(*MSGPACK)
def to_msgpack(ctx: Any, value: Any) -> bytes:
    """MessagePack bodies (``POST /v1/pings``); a case with an integer MessagePack cannot carry
    (beyond 64 bits) is dropped, as no client could send it."""
    try:
        return msgspec.msgpack.encode(value)
    except OverflowError:
        reject()


@schemathesis.serializer("text/csv")
def to_csv(ctx: Any, value: Any) -> bytes:
    """CSV bodies (``POST /v1/orders/import``) are text: a generated string is sent as is."""
    return value.encode("utf-8") if isinstance(value, str) else str(value).encode("utf-8")


@schemathesis.deserializer(*MSGPACK)
def from_msgpack(ctx: Any, response: Response) -> Any:
    """MessagePack answers, to check them against their schema."""
    return msgspec.msgpack.decode(response.content)


@schemathesis.check
def error_names_field_and_reason(
    ctx: CheckContext, response: Response, case: Case[Any]
) -> bool | None:
    """An error answer is ``{"error", "field", "reason"}`` with a reason; a 400, 413, 415 or
    422 also names the field. Answers documented with a body of their own (a batch's
    rejections, an import's rows, readiness) are left to the schema check."""
    status = response.status_code
    if status < 400:
        return None
    documented = case.operation.definition.raw.get("responses", {}).get(str(status))
    own_body = documented is not None and "$ref" not in documented
    try:
        body = msgspec.json.decode(response.content, type=ErrorBody)
    except msgspec.DecodeError as exc:
        if own_body:
            return None  # a body of its own, checked against its schema
        raise AssertionError(f"a {status} whose body is not the error body: {exc}") from None
    assert body.reason.strip(), f"a {status} without a reason"
    if status in NAMES_A_FIELD:
        assert body.field, f"a {status} that names no field: {body.reason!r}"
    return True


# --- the fuzz test ---------------------------------------------------------------------------

schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id(request: pytest.FixtureRequest) -> None:
    """Schemathesis (4.32) renames each operation's subtest through ``node._nodeid``, which
    pytest 9.2 no longer has: give it one to read."""
    node: Any = request.node
    if not hasattr(node, "_nodeid"):
        node._nodeid = node.nodeid


@schema.parametrize()
def test_every_operation_answers_as_documented(case: Case[Any], fuzzed: Fuzzed) -> None:
    """No 5xx; every answer as documented; every refusal names its field and reason."""
    case.call_and_validate(base_url=fuzzed.server.url)


def test_the_router_refuses_with_the_error_body(fuzzed: Fuzzed) -> None:
    """A method a path lacks (405) and a path nobody serves (404) answer the error body too."""
    with httpx.Client(base_url=fuzzed.server.url, timeout=10) as client:
        for method, path, status in (("DELETE", "/v1/orders", 405), ("GET", "/v1/nowhere", 404)):
            answer = client.request(method, path)
            assert answer.status_code == status
            body = msgspec.json.decode(answer.content, type=ErrorBody)
            assert body.reason.strip()
