"""The API reference: generated from the route table, complete, valid, and served with its page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from playwright.async_api import expect
from starlette.routing import Route

from app.api.catalogue import OPERATIONS, PATH_PARAMS, SOCKETS
from app.api.reference import document
from app.main import create_app
from app.openapi import JSON, Undocumented, build, http_keys, socket_paths
from app.settings import Settings
from tests.browser import Pages
from tests.conftest import LiveServer

WAIT_MS = 15_000


@pytest.fixture(scope="module")
def routes() -> list[Any]:
    """The routes of the main app, as the server mounts them."""
    return list(create_app(Settings()).routes)


@pytest.fixture(scope="module")
def spec(routes: list[Any]) -> dict[str, Any]:
    """The OpenAPI document of the main app."""
    return document(routes)


def documented_examples(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """``(where, schema, example)`` for every example the document shows."""
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            where = f"{method.upper()} {path}"
            for param in op.get("parameters", []):
                if "example" in param:
                    yield f"{where} {param['name']}", param["schema"], param["example"]
            for media, entry in op.get("requestBody", {}).get("content", {}).items():
                if "example" in entry:
                    yield f"{where} body {media}", entry["schema"], entry["example"]
            for status, answer in op["responses"].items():
                for media, entry in answer.get("content", {}).items():
                    if "example" in entry:
                        yield f"{where} {status} {media}", entry["schema"], entry["example"]


def test_every_route_of_the_app_is_in_the_reference(
    routes: list[Any], spec: dict[str, Any]
) -> None:
    """Each HTTP route's method and path is an operation, and each WebSocket is listed."""
    documented = {(m.upper(), p) for p, methods in spec["paths"].items() for m in methods}
    assert http_keys(routes) == documented
    assert socket_paths(routes) == set(spec["x-websockets"])


def test_a_route_without_an_entry_is_refused(routes: list[Any]) -> None:
    """A route the table does not describe stops the document from being built, by name."""

    async def handler(request: Any) -> Any:
        raise NotImplementedError

    extra = Route("/v1/unheard-of", handler, methods=["POST"])
    with pytest.raises(Undocumented, match=r"routes without an entry: POST /v1/unheard-of"):
        build([*routes, extra], OPERATIONS, SOCKETS, info={}, path_params=PATH_PARAMS)


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    """The document passes the OpenAPI 3.1 validator and its schemas are valid JSON Schema."""
    assert spec["openapi"] == "3.1.0"
    validate(spec)
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_every_documented_example_validates_against_its_schema(spec: dict[str, Any]) -> None:
    """Each example of a parameter, body or answer is valid under its documented schema."""
    checked = 0
    for where, schema, example in documented_examples(spec):
        root = {"allOf": [schema], "components": spec["components"]}
        errors = [e.message for e in Draft202012Validator(root).iter_errors(example)]
        assert errors == [], where
        checked += 1
    assert checked > 60


def test_every_example_decodes_as_the_type_the_server_reads() -> None:
    """Each JSON example in the table survives msgspec's decode into its documented type."""
    for op in OPERATIONS:
        pairs = []
        if op.body is not None:
            for media, example in op.body.examples.items():
                pairs.append((op.body.content[media], example.value, media))
        pairs += [(a.type, a.example.value, a.media) for a in op.answers if a.example is not None]
        for kind, value, media in pairs:
            if media != JSON:
                continue
            raw = msgspec.json.encode(value)
            decoded = msgspec.json.decode(raw, type=kind[0] if isinstance(kind, tuple) else kind)
            assert msgspec.json.encode(decoded) == raw, f"{op.method} {op.path}"


def test_every_operation_has_an_example_of_its_bodies(spec: dict[str, Any]) -> None:
    """A JSON request body and a JSON 2xx answer with a schema of its own come with an example."""
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            content = op.get("requestBody", {}).get("content", {})
            if JSON in content and "$ref" in content[JSON]["schema"]:
                assert "example" in content[JSON], f"{method} {path} body"
            ok = op["responses"].get("200") or op["responses"].get("201") or {}
            answer = ok.get("content", {}).get(JSON)
            if answer is not None and "$ref" in answer["schema"] and path not in ("/", "/v1/"):
                assert "example" in answer, f"{method} {path} answer"


def test_every_error_answer_is_the_error_body(spec: dict[str, Any]) -> None:
    """Each 4xx and 5xx answer is the one error body, except the few that report per item."""
    own_bodies = {"IngestResult", "ImportResult", "Readiness"}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for status, answer in op["responses"].items():
                if int(status) < 400:
                    continue
                if "$ref" in answer:
                    assert answer["$ref"] == f"#/components/responses/Error{status}"
                    continue
                schema = answer["content"][JSON]["schema"]
                names = {s["$ref"].rsplit("/", 1)[1] for s in schema.get("anyOf", [schema])}
                assert names - {"ErrorBody"} <= own_bodies, f"{method} {path} {status}"


def test_credentials_are_declared_per_operation(spec: dict[str, Any]) -> None:
    """API-key operations name their roles, and the roles a signed-in user may have; session,
    device, Basic and OsmAnd operations their scheme."""
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKey"]["bearerFormat"] == "lmk_…"
    assert (schemes["sessionCookie"]["in"], schemes["sessionCookie"]["name"]) == (
        "cookie",
        "lastmile_session",
    )
    assert schemes["deviceToken"]["bearerFormat"] == "lmd_…"
    assert schemes["ownTracksBasic"]["scheme"] == "basic"
    assert (schemes["osmandId"]["in"], schemes["osmandId"]["name"]) == ("query", "id")
    paths = spec["paths"]
    assert paths["/v1/orders"]["post"]["security"] == [
        {"apiKey": ["admin", "dispatcher", "integration"]},
        {"sessionCookie": ["admin", "dispatcher"]},
    ]
    assert paths["/v1/settings/dimensions"]["put"]["security"] == [
        {"apiKey": ["admin"]},
        {"sessionCookie": ["admin"]},
    ]
    assert paths["/v1/session"]["get"]["security"] == [{"sessionCookie": []}]
    assert paths["/v1/session"]["post"]["security"] == []
    assert paths["/v1/pings"]["post"]["security"] == [{"deviceToken": []}]
    assert paths["/owntracks"]["post"]["security"] == [{"ownTracksBasic": []}]
    assert paths["/osmand"]["get"]["security"] == [{"osmandId": []}]
    assert paths["/v1/track/{token}"]["get"]["security"] == []
    assert paths["/v1/track/{token}"]["get"]["parameters"][0]["name"] == "token"


def test_websocket_messages_are_schemas(spec: dict[str, Any]) -> None:
    """Each socket names its message unions, which are components tagged by ``type``."""
    schemas = spec["components"]["schemas"]
    for path, socket in spec["x-websockets"].items():
        for side in ("serverMessages", "clientMessages"):
            if side in socket:
                name = socket[side]["$ref"].rsplit("/", 1)[1]
                assert schemas[name]["discriminator"]["propertyName"] == "type", path
    driver = schemas["DriverClientMessage"]["discriminator"]["mapping"]
    assert set(driver) == {"ping", "pings"}
    live = schemas["LiveMessage"]["discriminator"]["mapping"]
    assert set(live) == {"snapshot", "routes", "positions", "event", "windows"}


async def test_the_server_serves_the_reference_and_its_page(
    http: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    """``/openapi.json`` is the document; ``/docs`` and its scripts need no inline script."""
    served = await http.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == msgspec.json.decode(msgspec.json.encode(spec))
    page = await http.get("/docs")
    assert page.status_code == 200
    policy = dict(
        d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts
    assert all(body.strip() == "" and "src=" in attrs for attrs, body in scripts)
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        answer = await http.get(asset)
        assert answer.status_code == 200, asset


async def test_the_roots_link_the_pages_the_reference_and_the_health_checks(
    http: httpx.AsyncClient,
) -> None:
    """``/`` and ``/v1/`` answer JSON whose links all answer, instead of a 404."""
    for root in ("/", "/v1/"):
        answer = await http.get(root)
        assert answer.status_code == 200
        links = answer.json()["links"]
        assert {"/dispatch", "/docs", "/openapi.json", "/healthz", "/readyz"} <= set(links.values())
        for link in links.values():
            assert (await http.get(link)).status_code == 200, link


@pytest.mark.browser
async def test_the_reference_page_shows_every_tag_in_chromium(
    server: LiveServer, pages: Pages, spec: dict[str, Any]
) -> None:
    """Swagger UI starts under the page's policy and lists each tag of the document."""
    page = await pages.open(f"{server.url}/docs")
    for tag in spec["tags"]:
        await expect(page.locator(f"#operations-tag-{tag['name']}")).to_be_visible(timeout=WAIT_MS)
