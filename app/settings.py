"""One typed, frozen settings object, read once from ``LASTMILE_*`` variables at process start.

Nothing in lastmile reads the environment at import time: the CLI calls :meth:`Settings.from_env`
and passes the result down. A value that cannot be read fails loudly, naming the variable.
Every variable is listed in the README's configuration table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec
from limits import parse as parse_limit
from msgspec import Meta

from adapters.sms import TemplatedHttpConfig
from schemas.notifications import parse_quiet_hours

PREFIX = "LASTMILE_"

WorkerName = Literal["persist", "planner", "eta", "notify", "sender", "webhooks", "rollups"]
"""The workers there are: the one declaration that settings, ``serve`` and ``worker`` read."""
WORKER_NAMES: tuple[WorkerName, ...] = get_args(WorkerName)

SECRET_FIELDS = (
    "database_url",
    "redis_url",
    "smtp_password",
    "twilio_auth_token",
    "sms_http_headers",
    "blob_s3_secret_access_key",
    "blob_signing_key",
)
"""Settings whose values never appear in the repr (URLs can carry passwords)."""


class SettingsError(ValueError):
    """A ``LASTMILE_*`` variable holds a value that cannot be used."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


Port = Annotated[int, Meta(ge=0, le=65535)]
Positive = Annotated[int, Meta(gt=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Process configuration. ``database_url``/``redis_url`` unset means: start embedded servers."""

    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".lastmile")
    host: str = "127.0.0.1"
    port: Port = 8000
    osmand_port: Port | None = 5055
    public_url: str | None = None
    tls_cert: Path | None = None
    """A PEM certificate (chain) for the API port; with ``tls_key``, the API speaks HTTPS only."""
    tls_key: Path | None = None
    """The PEM private key of ``tls_cert``."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"
    redis_prefix: str = ""
    ping_shards: Annotated[int, Meta(ge=1, le=1024)] = 4
    max_body_bytes: Positive = 4 * 1024 * 1024
    ping_max_future_s: PositiveFloat = 300.0
    ping_max_age_s: PositiveFloat = 7 * 86400.0
    stream_retention_s: PositiveFloat = 3600.0
    persist_batch: Positive = 200
    """Stream entries per shard the persist worker reads at once."""
    eta_batch: Positive = 200
    """Stream entries per shard the ETA worker reads at once."""
    worker_block_ms: Positive = 1000
    """How long any worker's read waits for new entries."""
    persist_linger_s: Annotated[float, Meta(ge=0, le=10)] = 0.1
    """The persist worker's pause after a small batch: fewer, larger COPYs at a steady load."""
    claim_idle_ms: Positive = 30_000
    partition_days_ahead: Annotated[int, Meta(ge=1, le=60)] = 3
    auth_cache_ttl_s: Annotated[float, Meta(ge=0)] = 30.0
    """How long a process keeps a token lookup; revocations evict it at once through Redis."""
    auth_db_timeout_s: Annotated[float, Meta(gt=0, le=60)] = 1.0
    """How long a token lookup waits for PostgreSQL before it reads the copy in Redis."""
    auth_fallback_ttl_s: Annotated[float, Meta(ge=60, le=30 * 86_400)] = 86_400.0
    """How long Redis keeps a resolved credential's copy (and a revocation's tombstone)."""
    auth_failure_limit: str = "30/minute"
    """Failed credentials one address may send (``limits`` notation: ``30/minute``,
    ``100 per hour``); past it, the address is refused (429) until the window has passed."""
    signin_failure_limit: str = "10 per 15 minutes"
    """Failed sign-ins one account may have (``limits`` notation); past it, that account's
    sign-ins are refused (429) until the window has passed, whatever address they come from."""
    session_ttl_s: Annotated[int, Meta(ge=300, le=30 * 86_400)] = 43_200
    """How long a signed-in user's session lasts (then they sign in again)."""
    db_pool_max: Annotated[int, Meta(ge=1, le=200)] = 10
    workers: tuple[WorkerName, ...] = WORKER_NAMES
    travel_speed_mps: PositiveFloat = 8.0
    circuity: Annotated[float, Meta(ge=1.0, le=3.0)] = 1.3
    osrm_url: str | None = None
    lease_ttl_s: Annotated[float, Meta(ge=0.5, le=300)] = 10.0
    """How long a dead ETA worker keeps its standby waiting (its lease's time to live)."""
    solver_processes: Annotated[int, Meta(ge=1, le=64)] = 1
    snapshot_part_stops: Annotated[int, Meta(ge=1, le=100_000)] = 500
    """The most stops one message of the dispatcher feed's snapshot holds: a larger day's routes
    follow in parts (``routes`` messages), so that no message grows with the day."""
    warm_solver: bool = True
    """Start the API's solver processes with the API (else on the first re-optimisation)."""
    plan_max_s: Annotated[float, Meta(gt=0, le=3600)] = 600.0
    """The longest time limit a plan may ask for (longer requests are refused, 422): the bound on
    how long one plan holds a planner process while other organisations' plans wait."""
    plan_lease_s: Annotated[float, Meta(ge=1, le=600)] = 30.0
    """How long a running plan stays with a planner that stopped renewing its hold (killed);
    then another planner takes it over and computes it afresh."""
    tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    tracking_ttl_h: Annotated[float, Meta(ge=0, le=24 * 30)] = 12.0
    notify_batch: Positive = 100
    """Events the notify worker reads at once."""
    notify_max_age_s: PositiveFloat = 1800.0
    """An event older than this notifies nobody (a backlog drained after an outage)."""
    notify_eta_move_s: Annotated[float, Meta(ge=0)] = 900.0
    """A moved arrival window reaches the customer only when an edge moved more than this."""
    notify_eta_interval_s: Annotated[float, Meta(ge=0)] = 1800.0
    """…and at most once in this long."""
    notify_quiet_hours: Annotated[str, Meta(pattern=r"^(\d\d:\d\d-\d\d:\d\d)?$")] = ""
    """``HH:MM-HH:MM`` in each organisation's time zone (empty: none): customer messages due
    then are dropped."""
    rollups_batch: Positive = 200
    """Events the rollups worker (the analytics facts) reads at once."""
    on_time_tolerance_s: Annotated[float, Meta(ge=0, le=7200)] = 0.0
    """How far outside the customer's window an arrival still counts as on time."""
    zone_h3_res: Annotated[int, Meta(ge=4, le=11)] = 8
    """The H3 resolution of the zones analytics groups stops by (8: cells of about 0.7 km²)."""
    grid_co2_kg_per_kwh: Annotated[float, Meta(ge=0, le=2)] = 0.4
    """CO₂ per kWh of the grid that charges electric vehicles."""
    learning: bool = True
    """Learn speeds and service times from the fleet's days, and plan with them (off: neither)."""
    learn_days: Annotated[int, Meta(ge=1, le=366)] = 28
    """How many of an organisation's latest days the learning reads."""
    learn_interval_h: Annotated[float, Meta(gt=0, le=24 * 30)] = 24.0
    """How often an organisation with new days is learned from again (the rollups worker)."""
    learned_model_ttl_s: Annotated[float, Meta(ge=0, le=86_400)] = 600.0
    """How long the ETA worker keeps an organisation's learned model before reading it again."""
    summary_hour: Annotated[int, Meta(ge=0, le=23)] = 7
    """The hour on Monday, in each organisation's time zone, from which its weekly summary of
    the week before is emailed (by the rollups worker, when an SMTP relay is configured)."""
    sender_batch: Annotated[int, Meta(ge=1, le=1000)] = 20
    """Outbox rows a sender claims per pass."""
    sender_max_tries: Annotated[int, Meta(ge=1, le=100)] = 10
    """Attempts before a message that keeps failing for now is ``dead``."""
    smtp_host: str | None = None
    """The SMTP relay for email; unset: email rows stay pending."""
    smtp_port: Port = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: Literal["none", "starttls", "implicit"] = "starttls"
    smtp_from: str | None = None
    """The ``From`` address, e.g. ``Acme deliveries <deliveries@acme.example>``."""
    twilio_account_sid: str | None = None
    """Twilio's account for SMS; unset: SMS rows stay pending."""
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    """The sending number (E.164)."""
    twilio_base_url: str = "https://api.twilio.com"
    sms_http_url: str | None = None
    """Any HTTP SMS provider, one templated request per message (instead of Twilio)."""
    sms_http_method: Literal["POST", "PUT"] = "POST"
    sms_http_headers: dict[str, str] | None = None
    """A JSON object of templated headers: where the provider's credentials go."""
    sms_http_body: dict[str, str] | None = None
    """A JSON object of templated fields (``$to``, ``$body``, ``$idempotency_key``); unset:
    :data:`adapters.sms.TEMPLATED_BODY`."""
    sms_http_body_format: Literal["json", "form"] = "json"
    sms_http_id_field: str | None = None
    """A dotted path to the provider's message id in its JSON answer (else the idempotency key)."""
    reschedule_max_days: Annotated[int, Meta(ge=1, le=365)] = 14
    """How many days ahead a customer may move a delivery to."""
    webhook_batch: Annotated[int, Meta(ge=1, le=1000)] = 50
    """Webhook deliveries a webhooks worker claims and sends concurrently per pass."""
    webhook_max_tries: Annotated[int, Meta(ge=1, le=100)] = 15
    """Attempts, spread over about a day, before a webhook delivery is given up (``dead``)."""
    webhook_disable_after: Annotated[int, Meta(ge=1, le=100_000)] = 50
    """Failed webhook attempts in a row (over an endpoint's deliveries) that disable it."""
    webhook_timeout_s: Annotated[float, Meta(gt=0, le=60)] = 10.0
    """One webhook attempt: resolution, connection, request and the answer's status line."""
    webhook_allow_addresses: tuple[
        Literal["loopback", "private", "link_local", "unspecified", "multicast", "reserved"], ...
    ] = ()
    """Non-public address classes webhook URLs may resolve to (comma-separated; empty: none,
    which is what production wants: the others are refused as SSRF)."""
    demo_mail_dir: Path | None = None
    """A Maildir of mails to show at ``/demo/mail`` (``serve --demo`` sets it to its local mail
    sink's folder when no SMTP relay is configured); unset: no mail page."""
    proof_max_distance_m: PositiveFloat = 200.0
    """A proof captured farther than this from its stop's address is flagged on the dispatcher's
    map."""
    proof_max_bytes: Positive = 40 * 1024 * 1024
    """The most a proof upload (all its parts) may hold."""
    image_max_pixels: Annotated[int, Meta(ge=1, le=200_000_000)] = 40_000_000
    """The most pixels an uploaded image may have; more, or a decompression bomb, is 413."""
    blob_store: Literal["local", "s3"] = "local"
    """Where proof images go: a folder under ``data_dir``, or an S3-compatible store."""
    blob_s3_bucket: str | None = None
    blob_s3_endpoint_url: str | None = None
    """An S3-compatible endpoint (MinIO, Ceph, …); unset: AWS S3."""
    blob_s3_region: str = "us-east-1"
    blob_s3_access_key_id: str | None = None
    blob_s3_secret_access_key: str | None = None
    blob_url_ttl_s: Annotated[int, Meta(ge=10, le=86400)] = 300
    """How long a signed blob URL stays valid."""
    blob_signing_key: str | None = None
    """The HMAC key of the local store's signed URLs; unset: one kept in ``data_dir``."""

    def __repr__(self) -> str:
        shown = {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if name not in SECRET_FIELDS
        }
        hidden = {n: "***" for n in SECRET_FIELDS if getattr(self, n) is not None}
        return f"Settings({shown | hidden})"

    @property
    def email_configured(self) -> bool:
        """True when an SMTP relay and a ``From`` address are set: email can be sent."""
        return self.smtp_host is not None and self.smtp_from is not None

    @property
    def embedded(self) -> bool:
        """True when at least one backing service must be started under ``data_dir``."""
        return self.database_url is None or self.redis_url is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every ``LASTMILE_*`` variable; raise :class:`SettingsError` naming a bad one."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name, field_type in _fields().items():
            value = env.get(PREFIX + name.upper())
            if value is None or value == "":
                continue
            raw[name] = _parse(name, value, field_type)
        raw.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return msgspec.convert(raw, cls, strict=False, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            name = _field_of(str(exc))
            raise SettingsError(PREFIX + name.upper(), str(exc).split(" - at ")[0]) from None


def _fields() -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(Settings)}


def _parse(name: str, value: str, field_type: Any) -> Any:
    if name in ("workers", "webhook_allow_addresses"):
        return tuple(w.strip() for w in value.split(",") if w.strip())
    if name == "osmand_port" and value.lower() in {"off", "none", "0"}:
        return None
    if name == "tile_url" and value.lower() in {"off", "none"}:
        return "off"
    if name in ("sms_http_headers", "sms_http_body"):
        try:
            decoded = msgspec.json.decode(value, type=dict[str, str])
        except msgspec.DecodeError as exc:
            raise SettingsError(
                PREFIX + name.upper(), f"expected a JSON object of strings: {exc}"
            ) from None
        try:  # the placeholders a template may name
            TemplatedHttpConfig(url="http://provider.invalid", body=decoded)
        except ValueError as exc:
            raise SettingsError(PREFIX + name.upper(), str(exc)) from None
        return decoded
    if name in ("auth_failure_limit", "signin_failure_limit"):
        try:
            parse_limit(value)
        except ValueError as exc:
            raise SettingsError(PREFIX + name.upper(), f"expected e.g. 30/minute: {exc}") from None
    if name == "notify_quiet_hours":
        try:
            parse_quiet_hours(value)
        except ValueError as exc:
            raise SettingsError(PREFIX + name.upper(), str(exc)) from None
    return value


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is Path:
        return Path(obj)
    raise NotImplementedError(typ)


def _field_of(message: str) -> str:
    if "`$." in message:
        return message.split("`$.")[1].split("`")[0].split("[")[0]
    return "?"
