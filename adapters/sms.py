"""Text messages to customers: an :class:`SmsSender` interface, Twilio's REST Messages API, a
generic templated HTTP provider, and the pure parsing of what Twilio posts back to us.

Sending: :class:`TwilioSmsSender` POSTs a form (``To``, ``From`` or ``MessagingServiceSid``,
``Body``, ``StatusCallback``) to ``/2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP
Basic auth (account SID, auth token) and returns Twilio's ``sid`` and ``status``. Twilio's
Messages API has no idempotency key, so an at-least-once sender can send a message twice; the
returned ``sid`` is what status callbacks name, and the caller records it against the outbox row.
:class:`TemplatedHttpSmsSender` fits any provider whose API takes one request per message.

Receiving: :func:`parse_status_callback` and :func:`parse_inbound` turn Twilio's callback forms
into Structs (inbound bodies that are exactly an opt-out or opt-in word, such as STOP or START,
carry that keyword); :func:`valid_twilio_signature` checks ``X-Twilio-Signature``. These are pure:
the app reads the form and the header and calls them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
import msgspec

from adapters.errors import ChannelError, PermanentFailure, RetryableFailure, retry_after_s

CHANNEL = "sms"

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})


class SmsReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """What the provider said about an accepted message: its id and first status."""

    provider_id: str
    status: str


class SmsSender(Protocol):
    """Sends one text message; what a notification sender needs from any SMS provider."""

    async def send(self, *, to: str, body: str, idempotency_key: str) -> SmsReceipt:
        """Hand one message to the provider.

        Raises :class:`~adapters.errors.PermanentFailure` when the provider refuses it (bad
        number, bad credentials) and :class:`~adapters.errors.RetryableFailure` when it may
        succeed later (5xx, 429, network).
        """
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class TwilioConfig:
    """A Twilio account and sender; exactly one of ``from_number`` and ``messaging_service_sid``.

    The auth token never appears in the repr.
    """

    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str | None = None
    messaging_service_sid: str | None = None
    status_callback_url: str | None = None
    base_url: str = "https://api.twilio.com"
    timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError(
                "expected exactly one of from_number and messaging_service_sid, got "
                f"from_number={self.from_number!r}, "
                f"messaging_service_sid={self.messaging_service_sid!r}"
            )


class TwilioSmsSender:
    """An :class:`SmsSender` over Twilio's REST Messages API.

    Owns an :class:`httpx.AsyncClient`; call :meth:`aclose` (or use ``async with``) when done.
    """

    def __init__(self, config: TwilioConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client or httpx.AsyncClient(timeout=config.timeout_s)
        self._url = (
            f"{config.base_url.rstrip('/')}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        )

    def __repr__(self) -> str:
        return f"TwilioSmsSender({self.config!r})"

    async def __aenter__(self) -> TwilioSmsSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def send(self, *, to: str, body: str, idempotency_key: str) -> SmsReceipt:
        """POST the message; returns Twilio's ``sid`` and ``status`` (usually ``queued``)."""
        c = self.config
        form = {"To": to, "Body": body}
        if c.messaging_service_sid is not None:
            form["MessagingServiceSid"] = c.messaging_service_sid
        elif c.from_number is not None:
            form["From"] = c.from_number
        if c.status_callback_url is not None:
            form["StatusCallback"] = c.status_callback_url
        try:
            reply = await self._client.post(
                self._url, data=form, auth=httpx.BasicAuth(c.account_sid, c.auth_token)
            )
        except httpx.HTTPError as exc:
            raise RetryableFailure(CHANNEL, f"Twilio at {c.base_url} failed: {exc!r}") from exc
        answer = _json_object(reply)
        if reply.is_success:
            sid, status = answer.get("sid"), answer.get("status")
            if not isinstance(sid, str) or not isinstance(status, str):
                raise RetryableFailure(
                    CHANNEL,
                    f"expected a sid and a status from Twilio, got {reply.text[:200]!r}",
                    status_code=reply.status_code,
                )
            return SmsReceipt(provider_id=sid, status=status)
        code = answer.get("code")
        detail = f"Twilio answered {reply.status_code}"
        if code is not None:
            detail += f" (error {code}): {answer.get('message', '')}"
        raise _failure(reply, detail, None if code is None else str(code))


TEMPLATED_BODY: Mapping[str, str] = {
    "to": "$to",
    "text": "$body",
    "reference": "$idempotency_key",
}
"""The templated adapter's fields when none are configured."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TemplatedHttpConfig:
    """One request per message to any HTTP SMS provider.

    ``body`` maps each field to a template in which ``$to``, ``$body`` and ``$idempotency_key``
    are replaced (``string.Template`` syntax; ``$$`` is a dollar). The body is then encoded as
    JSON or as a form, so a message's text can never break out of its field. ``headers`` are
    templated the same way (e.g. ``{"Idempotency-Key": "$idempotency_key"}``) and never
    appear in the repr: credentials belong there, not in ``url`` or ``body``, which it shows.
    ``id_field`` is a dotted path into the JSON answer for the provider's message id (else the
    idempotency key is used).
    """

    url: str
    method: Literal["POST", "PUT"] = "POST"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: Mapping[str, str] = field(default_factory=lambda: dict(TEMPLATED_BODY))
    body_format: Literal["json", "form"] = "json"
    id_field: str | None = None
    timeout_s: float = 15.0

    def __post_init__(self) -> None:
        for name, template in [*self.body.items(), *self.headers.items()]:
            placeholders = _placeholders(template)
            unknown = placeholders - {"to", "body", "idempotency_key"}
            if unknown:
                raise ValueError(
                    f"expected placeholders $to, $body or $idempotency_key in {name!r}, "
                    f"got ${', $'.join(sorted(unknown))}"
                )


class TemplatedHttpSmsSender:
    """An :class:`SmsSender` for providers described by a :class:`TemplatedHttpConfig`."""

    def __init__(
        self, config: TemplatedHttpConfig, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self.config = config
        self._client = client or httpx.AsyncClient(timeout=config.timeout_s)

    def __repr__(self) -> str:
        return f"TemplatedHttpSmsSender({self.config!r})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def render(self, *, to: str, body: str, idempotency_key: str) -> httpx.Request:
        """The request :meth:`send` sends for this message."""
        c = self.config
        values = {"to": to, "body": body, "idempotency_key": idempotency_key}
        headers = {k: string.Template(v).substitute(values) for k, v in c.headers.items()}
        fields = {k: string.Template(v).substitute(values) for k, v in c.body.items()}
        if c.body_format == "json":
            return self._client.build_request(c.method, c.url, headers=headers, json=fields)
        return self._client.build_request(c.method, c.url, headers=headers, data=fields)

    async def send(self, *, to: str, body: str, idempotency_key: str) -> SmsReceipt:
        """Send the rendered request; any 2xx is accepted, status ``accepted``."""
        request = self.render(to=to, body=body, idempotency_key=idempotency_key)
        try:
            reply = await self._client.send(request)
        except httpx.HTTPError as exc:
            raise RetryableFailure(CHANNEL, f"{self.config.url} failed: {exc!r}") from exc
        if not reply.is_success:
            raise _failure(reply, f"{self.config.url} answered {reply.status_code}", None)
        provider_id = idempotency_key
        if self.config.id_field is not None:
            found: Any = _json_object(reply)
            for part in self.config.id_field.split("."):
                found = found.get(part) if isinstance(found, dict) else None
            if found is None:
                raise PermanentFailure(
                    CHANNEL,
                    f"expected {self.config.id_field!r} in the answer, got {reply.text[:200]!r}",
                    status_code=reply.status_code,
                )
            provider_id = str(found)
        return SmsReceipt(provider_id=provider_id, status="accepted")


def _placeholders(template: str) -> set[str]:
    return {
        m.group("named") or m.group("braced")
        for m in string.Template.pattern.finditer(template)
        if m.group("named") or m.group("braced")
    }


def _json_object(reply: httpx.Response) -> dict[str, Any]:
    try:
        answer = reply.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return answer if isinstance(answer, dict) else {}


def _failure(reply: httpx.Response, detail: str, code: str | None) -> ChannelError:
    """5xx, 408 and 429 may pass; any other 4xx is the provider refusing this request."""
    status = reply.status_code
    if status >= 500 or status in (408, 429):
        return RetryableFailure(
            CHANNEL,
            detail,
            status_code=status,
            code=code,
            retry_after_s=retry_after_s(reply.headers.get("retry-after")),
        )
    return PermanentFailure(CHANNEL, detail, status_code=status, code=code)


# --- What Twilio posts back --------------------------------------------------------------------


class StatusCallback(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery report: which message, its new status, Twilio's error code when it failed."""

    message_sid: str
    status: str
    error_code: str | None = None

    @property
    def final(self) -> bool:
        """True when no later status will come (delivered, failed, undelivered, canceled...)."""
        return self.status in {"delivered", "failed", "undelivered", "canceled", "read"}


class InboundSms(msgspec.Struct, frozen=True, kw_only=True):
    """A customer's text to us; ``keyword`` is set when the whole body is STOP, START, ..."""

    message_sid: str
    from_number: str
    to_number: str
    body: str
    keyword: Literal["opt_out", "opt_in"] | None = None


class CallbackError(ValueError):
    """A callback form lacks a field it must have (``field`` names it)."""

    def __init__(self, field: str) -> None:
        super().__init__(f"expected a {field!r} field in the Twilio callback, got none")
        self.field = field


def parse_status_callback(form: Mapping[str, str]) -> StatusCallback:
    """A status callback form as a :class:`StatusCallback`; raises :class:`CallbackError`."""
    status = _required(form, "MessageStatus").lower()
    error_code = form.get("ErrorCode") or None
    return StatusCallback(
        message_sid=_required(form, "MessageSid"), status=status, error_code=error_code
    )


def parse_inbound(form: Mapping[str, str]) -> InboundSms:
    """An incoming message form as an :class:`InboundSms`; raises :class:`CallbackError`.

    Like Twilio's own opt-out handling, a keyword counts only when it is the whole message
    (case, surrounding spaces and trailing punctuation aside): "stop" opts out, "please stop
    texting me" does not.
    """
    body = form.get("Body", "")
    return InboundSms(
        message_sid=form.get("MessageSid") or form.get("SmsSid") or "",
        from_number=_required(form, "From"),
        to_number=form.get("To", ""),
        body=body,
        keyword=keyword(body),
    )


def keyword(body: str) -> Literal["opt_out", "opt_in"] | None:
    """``opt_out`` for STOP and its synonyms, ``opt_in`` for START and its synonyms, else None."""
    word = body.strip().rstrip(".!").strip().upper()
    if word in OPT_OUT_WORDS:
        return "opt_out"
    if word in OPT_IN_WORDS:
        return "opt_in"
    return None


def twilio_signature(
    url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], auth_token: str
) -> str:
    """Twilio's ``X-Twilio-Signature`` for a POST to ``url`` with form ``params``.

    Base64 of HMAC-SHA1, keyed by the auth token, over the full URL (as Twilio requested it,
    query included) followed by each parameter name and value, sorted by name then value.
    """
    pairs = params.items() if isinstance(params, Mapping) else params
    signed = url + "".join(name + value for name, value in sorted(set(pairs)))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def valid_twilio_signature(
    url: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    signature: str,
    auth_token: str,
) -> bool:
    """True when ``signature`` is Twilio's for this URL and form (constant-time comparison).

    The caller must pass the URL exactly as Twilio called it (behind a proxy: the public one).
    """
    expected = twilio_signature(url, params, auth_token)
    return hmac.compare_digest(expected.encode(), signature.encode())


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise CallbackError(name)
    return value
