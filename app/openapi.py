"""The OpenAPI 3.1 reference, generated from the route table and one table of operations.

The route table (:func:`app.main.create_app`) says which paths and methods exist; a table of
:class:`Operation` and :class:`Socket` values (:mod:`app.api.reference`) says what each one
takes, answers and requires. :func:`build` joins the two and refuses, with
:class:`Undocumented`, when a route has no entry or an entry no route, so the reference cannot
drift from the app: a new route without its entry fails the test that builds the document.

Schemas are msgspec's own (:func:`msgspec.json.schema_components` over every type the table
names), so what the reference says a body is, is what the decoders accept. Every error answer
is the one :class:`~app.errors.ErrorBody`; the statuses each credential and each kind of input
implies (401 for a missing token, 400 and 415 for a body, 400 and 404 for an id in the path)
are added here, once, instead of being repeated in every entry.

WebSockets have no place in OpenAPI's paths: they are listed under the extension
``x-websockets``, with their message unions as ordinary schema components.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec
from starlette.routing import BaseRoute, Route, WebSocketRoute

from app.errors import ErrorBody
from schemas.auth import Role

JSON: Final = "application/json"
REF: Final = "#/components/schemas/{name}"

Credential = Literal["api_key", "session", "device", "basic", "osmand", "tracking", "none"]
"""How a caller proves who it is: an API key (or a signed-in user's session cookie), a user's
session cookie alone, or a device token as a Bearer token, HTTP Basic
with the device token as password (OwnTracks), the device token as the ``id`` parameter
(OsmAnd), a tracking token in the path (customers), or nothing."""

SECURITY_SCHEMES: Final[dict[str, dict[str, str]]] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "lmk_…",
        "description": "An organisation's API key (`lastmile apikey create`), sent as"
        " `Authorization: Bearer lmk_…`. Its role (admin, dispatcher or integration) decides"
        " what it may do; each operation lists the roles it accepts. A key reaches its own"
        " organisation only: another organisation's objects answer 404 like missing ones.",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "lastmile_session",
        "description": "A user's session (`POST /v1/session` with an email and password sets"
        " it; HttpOnly, named `__Host-lastmile_session` over TLS). It holds the user's role"
        " (admin or dispatcher) wherever an API key of that role is accepted, for HTTP requests"
        " (a page opens sockets with a ticket). Any change made with it (every method but GET,"
        " HEAD and OPTIONS) carries the session's `csrf_token` in the `X-CSRF-Token` header,"
        " or is refused with 403.",
    },
    "deviceToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "lmd_…",
        "description": "A driver's device token (`POST /v1/drivers/{driver_id}/devices`), sent"
        " as `Authorization: Bearer lmd_…`. A device writes only its own driver's pings and"
        " stops.",
    },
    "ownTracksBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "OwnTracks in HTTP mode: any user name, the device token as password.",
    },
    "osmandId": {
        "type": "apiKey",
        "in": "query",
        "name": "id",
        "description": "OsmAnd (Traccar Client): the device token as the device identifier"
        " `id` (or `deviceid`, or `device_id` in the JSON body).",
    },
}
_SCHEME_OF: Final[dict[Credential, str]] = {
    "api_key": "apiKey",
    "session": "sessionCookie",
    "device": "deviceToken",
    "basic": "ownTracksBasic",
    "osmand": "osmandId",
}

ERROR_MEANINGS: Final[dict[int, str]] = {
    400: "A parameter or a field of the body is wrong: `field` names it as the client spelled"
    " it, `reason` says what was expected and what came.",
    401: "No usable credential: missing, unknown or revoked (with `WWW-Authenticate`).",
    403: "The API key's (or the signed-in user's) role may not do this; or a change made with"
    " a session cookie came without its `X-CSRF-Token`.",
    404: "No such object in the caller's organisation (another organisation's looks the same).",
    409: "The object's state or a unique value forbids it; `reason` says which.",
    410: "The tracking link has expired.",
    413: "The body is larger than the server takes (`LASTMILE_MAX_BODY_BYTES`).",
    415: "The `Content-Type` is not one this operation reads.",
    422: "The request is well-formed but cannot be processed; `reason` says why.",
    429: "Too many failed credentials from this address (`LASTMILE_AUTH_FAILURE_LIMIT`);"
    " retry after `Retry-After` seconds.",
    503: "PostgreSQL or Redis could not take the request; retry (with `Retry-After`).",
}


@dataclass(frozen=True)
class Example:
    """A documented value: ``value`` is a Struct (or builtins) that must decode as its type."""

    value: Any
    summary: str = ""


@dataclass(frozen=True)
class Param:
    """A query, header or path parameter; ``type`` is any type msgspec can describe."""

    name: str
    type: Any
    description: str
    where: Literal["query", "header", "path"] = "query"
    required: bool = False
    example: Any = None
    empty_is_absent: bool = False
    """An empty value (``?day=``) counts as leaving the parameter out."""


@dataclass(frozen=True)
class Body:
    """A request body: one type per media type it may come as, and examples of each."""

    content: Mapping[str, Any]
    description: str = ""
    required: bool = True
    examples: Mapping[str, Example] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """A documented answer: ``type`` None means an empty body, a tuple of types any one of them."""

    status: int
    description: str
    type: Any = None
    media: str = JSON
    example: Example | None = None
    alternatives: Mapping[str, Any] = field(default_factory=dict)
    """Other media types the same answer may come as, each with its type."""


@dataclass(frozen=True)
class Operation:
    """One method on one path: what it takes, what it answers, and who may call it.

    ``errors`` lists the error statuses beyond those :func:`build` implies from the credential,
    the body and the path parameters.
    """

    method: str
    path: str
    summary: str
    tag: str
    answers: tuple[Answer, ...]
    credential: Credential = "none"
    roles: tuple[Role, ...] = ()
    params: tuple[Param, ...] = ()
    body: Body | None = None
    errors: tuple[int, ...] = ()
    description: str = ""
    idempotent: bool = False
    """Accepts ``Idempotency-Key`` (a retried create replays its first answer)."""

    @property
    def key(self) -> tuple[str, str]:
        return self.method.upper(), self.path


@dataclass(frozen=True)
class Socket:
    """A WebSocket endpoint: its messages each way, as named unions, and its close codes."""

    path: str
    summary: str
    credential: Credential
    server: tuple[str, Any]
    """Component name and type of what the server sends."""
    client: tuple[str, Any] | None = None
    """Component name and type of what the client sends; None for a read-only socket."""
    roles: tuple[Role, ...] = ()
    params: tuple[Param, ...] = ()
    closes: Mapping[int, str] = field(default_factory=dict)
    description: str = ""


class Undocumented(Exception):
    """Routes without an entry in the table, or entries without a route."""

    def __init__(self, missing: Sequence[str], stale: Sequence[str]) -> None:
        parts = []
        if missing:
            parts.append(f"routes without an entry: {', '.join(missing)}")
        if stale:
            parts.append(f"entries without a route: {', '.join(stale)}")
        super().__init__("; ".join(parts))
        self.missing = list(missing)
        self.stale = list(stale)


IGNORED_METHODS: Final = frozenset({"HEAD"})
"""Starlette answers HEAD wherever GET is; the reference documents the GET."""


def http_keys(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """Every ``(METHOD, path)`` of the HTTP routes (mounts of static files are not operations)."""
    keys = set()
    for route in routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method not in IGNORED_METHODS:
                    keys.add((method, route.path))
    return keys


def socket_paths(routes: Iterable[BaseRoute]) -> set[str]:
    """The paths of the WebSocket routes."""
    return {route.path for route in routes if isinstance(route, WebSocketRoute)}


def check_coverage(
    routes: Sequence[BaseRoute], operations: Sequence[Operation], sockets: Sequence[Socket]
) -> None:
    """Raise :class:`Undocumented` unless the table and the route table name the same things."""
    declared = {op.key for op in operations}
    served = http_keys(routes)
    declared_ws, served_ws = {s.path for s in sockets}, socket_paths(routes)
    missing = [f"{m} {p}" for m, p in sorted(served - declared)]
    missing += [f"WebSocket {p}" for p in sorted(served_ws - declared_ws)]
    stale = [f"{m} {p}" for m, p in sorted(declared - served)]
    stale += [f"WebSocket {p}" for p in sorted(declared_ws - served_ws)]
    if missing or stale:
        raise Undocumented(missing, stale)


class _Schemas:
    """Every type the table names, described in one msgspec call so components are shared."""

    def __init__(self, types: Iterable[Any], named: Mapping[str, Any]) -> None:
        unique: list[Any] = []
        for kind in [ErrorBody, *types, *named.values()]:
            for one in kind if isinstance(kind, tuple) and kind else (kind,):
                if one not in unique:
                    unique.append(one)
        described, self.components = msgspec.json.schema_components(unique, ref_template=REF)
        self._of = list(zip(unique, described, strict=True))
        for name, kind in named.items():
            self.components[name] = self.of(kind)

    def of(self, kind: Any) -> dict[str, Any]:
        """The schema of ``kind``; a tuple of types is any one of them."""
        if isinstance(kind, tuple) and kind:
            return {"anyOf": [self.of(one) for one in kind]}
        for known, schema in self._of:
            if known == kind:
                return dict(schema)
        raise KeyError(kind)


def _types_of(operations: Sequence[Operation], sockets: Sequence[Socket]) -> list[Any]:
    types: list[Any] = []
    for op in operations:
        types += [p.type for p in op.params]
        if op.body is not None:
            types += list(op.body.content.values())
        types += [a.type for a in op.answers if a.type is not None]
        types += [kind for a in op.answers for kind in a.alternatives.values()]
    for socket in sockets:
        types += [p.type for p in socket.params]
    return types


def _builtins(value: Any) -> Any:
    """``value`` as the JSON it is sent as (Structs, tuples, datetimes become JSON types)."""
    return msgspec.json.decode(msgspec.json.encode(value))


_PATH_PARAM: Final = re.compile(r"{([^}:]+)(?::[^}]+)?}")


def _param(param: Param, schemas: _Schemas) -> dict[str, Any]:
    schema = schemas.of(param.type)
    description = param.description
    if param.empty_is_absent:
        schema = {"anyOf": [schema, {"const": ""}]}
        description += " Empty is the same as absent."
    out: dict[str, Any] = {
        "name": param.name,
        "in": param.where,
        "description": description,
        "required": param.required or param.where == "path",
        "schema": schema,
    }
    if param.example is not None:
        out["example"] = _builtins(param.example)
    return out


def _security(
    credential: Credential, roles: Sequence[Role], *, cookie: bool = True
) -> list[dict[str, list[str]]]:
    scheme = _SCHEME_OF.get(credential)
    if scheme is None:
        return []
    if credential == "api_key" and cookie:  # or a user of such a role, signed in
        people: list[str] = [role for role in roles if role != "integration"]
        by_key: dict[str, list[str]] = {scheme: list(roles)}
        return [by_key] + ([{"sessionCookie": people}] if people else [])
    return [{scheme: list(roles)}]


def _implied_errors(op: Operation, path_params: Sequence[str]) -> set[int]:
    statuses = set(op.errors)
    if op.credential in ("api_key", "session", "device", "basic", "osmand"):
        statuses |= {401, 429, 503}
    if op.roles or op.credential == "session":  # a change without its CSRF token
        statuses.add(403)
    if op.body is not None:
        statuses |= {400, 413, 415}
    if op.params:
        statuses.add(400)
    if path_params:
        statuses |= {400, 404}
    if op.idempotent:
        statuses |= {400, 422}
    return statuses


IDEMPOTENCY_KEY: Final = Param(
    "Idempotency-Key",
    str,
    "1 to 255 visible ASCII characters, unique per organisation for 24 hours: a retried"
    " request with the same key and body creates nothing and replays the first answer"
    " (with `Idempotent-Replayed: true`); the same key with another body is a 422.",
    where="header",
    example="order-A-1001-v1",
)


def _operation(op: Operation, schemas: _Schemas, path_types: Mapping[str, Param]) -> dict[str, Any]:
    names = _PATH_PARAM.findall(op.path)
    own = {p.name for p in op.params if p.where == "path"}
    params = [path_types[name] for name in names if name not in own]
    params += list(op.params)
    if op.idempotent:
        params.append(IDEMPOTENCY_KEY)
    out: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": [op.tag],
        "security": _security(op.credential, op.roles),
    }
    description = op.description
    if op.roles:
        description = f"Roles: {', '.join(op.roles)}.\n\n{description}".strip()
    if description:
        out["description"] = description
    if params:
        out["parameters"] = [_param(p, schemas) for p in params]
    if op.body is not None:
        out["requestBody"] = _body(op.body, schemas)
    responses: dict[str, Any] = {}
    for answer in op.answers:
        responses[str(answer.status)] = _answer(answer, schemas)
    for status in sorted(_implied_errors(op, names) - {a.status for a in op.answers}):
        responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    out["responses"] = dict(sorted(responses.items()))
    return out


def _body(body: Body, schemas: _Schemas) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for media, kind in body.content.items():
        entry: dict[str, Any] = {"schema": schemas.of(kind)}
        example = body.examples.get(media)
        if example is not None:
            entry["example"] = _builtins(example.value)
        content[media] = entry
    out: dict[str, Any] = {"required": body.required, "content": content}
    if body.description:
        out["description"] = body.description
    return out


def _answer(answer: Answer, schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.type is not None:
        entry: dict[str, Any] = {"schema": schemas.of(answer.type)}
        if answer.example is not None:
            entry["example"] = _builtins(answer.example.value)
        out["content"] = {answer.media: entry}
        for media, kind in answer.alternatives.items():
            out["content"][media] = {"schema": schemas.of(kind)}
    return out


def _operation_id(op: Operation) -> str:
    words = re.sub(r"[{}]", "", op.path).strip("/").replace("/", "_").replace("-", "_")
    return f"{op.method.lower()}_{words or 'root'}"


def _socket(socket: Socket, schemas: _Schemas, path_types: Mapping[str, Param]) -> dict[str, Any]:
    params = [path_types[name] for name in _PATH_PARAM.findall(socket.path)]
    params += list(socket.params)
    out: dict[str, Any] = {
        "summary": socket.summary,
        "description": socket.description,
        "security": _security(socket.credential, socket.roles, cookie=False),
        "parameters": [_param(p, schemas) for p in params],
        "serverMessages": {"$ref": REF.format(name=socket.server[0])},
        "closeCodes": {str(code): meaning for code, meaning in socket.closes.items()},
    }
    if socket.client is not None:
        out["clientMessages"] = {"$ref": REF.format(name=socket.client[0])}
    return out


def build(
    routes: Sequence[BaseRoute],
    operations: Sequence[Operation],
    sockets: Sequence[Socket],
    *,
    info: Mapping[str, Any],
    path_params: Sequence[Param],
    tags: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``, described by ``operations`` and ``sockets``.

    ``path_params`` describes each path parameter name once (``order_id``, ``token``).
    Raises :class:`Undocumented` when the table and the routes differ.
    """
    check_coverage(routes, operations, sockets)
    named: dict[str, Any] = {}
    for socket in sockets:
        for pair in (socket.server, socket.client):
            if pair is not None:
                named[pair[0]] = pair[1]
    schemas = _Schemas([*_types_of(operations, sockets), *(p.type for p in path_params)], named)
    path_types = {p.name: p for p in path_params}
    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(operations, key=lambda o: o.path):
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas, path_types)
    error_ref = {"$ref": REF.format(name="ErrorBody")}
    return {
        "openapi": "3.1.0",
        "info": dict(info),
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "tags": [dict(t) for t in tags],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": SECURITY_SCHEMES,
            "responses": {
                f"Error{status}": {
                    "description": meaning,
                    "content": {JSON: {"schema": error_ref}},
                }
                for status, meaning in ERROR_MEANINGS.items()
            },
        },
        "x-websockets": {s.path: _socket(s, schemas, path_types) for s in sockets},
    }
