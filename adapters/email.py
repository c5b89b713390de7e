"""Email to customers and dispatchers: an :class:`EmailSender` interface and its SMTP sender.

The SMTP sender speaks to a relay with STARTTLS, implicit TLS (``smtps``, usually port 465) or,
for a local sink only, plain text; it authenticates when a username is configured. Each message
is ``multipart/alternative`` (text, then HTML) built with the standard library's
:class:`~email.message.EmailMessage`. The caller's idempotency key becomes the ``Message-ID``
(and an ``X-Lastmile-Idempotency-Key`` header), so a message sent twice by an at-least-once sender
carries the same id both times and receivers can drop the duplicate.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol

import aiosmtplib

from adapters.errors import PermanentFailure, RetryableFailure

CHANNEL = "email"
IDEMPOTENCY_HEADER = "X-Lastmile-Idempotency-Key"

# RFC 5322 dot-atom text, without the dots at either end: what may stand left of the "@".
_ID_LEFT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


class EmailSender(Protocol):
    """Sends one email; what a notification sender needs from any mail provider."""

    async def send(
        self, *, to: str, subject: str, text: str, html: str | None, idempotency_key: str
    ) -> str:
        """Send one message and return the provider's id for it.

        Raises :class:`~adapters.errors.PermanentFailure` when the provider refuses the message
        and :class:`~adapters.errors.RetryableFailure` when it may succeed later.
        """
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class SmtpConfig:
    """Where and how to reach the SMTP relay. The password never appears in the repr."""

    host: str
    port: int = 587
    sender: str
    """The ``From`` address, e.g. ``Acme deliveries <deliveries@acme.example>``."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    """Trust this CA bundle instead of the system's (a private relay, or tests)."""
    timeout_s: float = 30.0
    message_id_domain: str | None = None
    """Right-hand side of Message-IDs; defaults to the sender's domain."""


class SmtpEmailSender:
    """An :class:`EmailSender` over SMTP with aiosmtplib; one connection per message."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._from = _parse_address(config.sender)
        self._id_domain = config.message_id_domain or self._from.domain or "localhost"
        self._tls_context: ssl.SSLContext | None = None
        if config.tls != "none":
            self._tls_context = ssl.create_default_context(
                cafile=str(config.ca_file) if config.ca_file is not None else None
            )

    def __repr__(self) -> str:
        return f"SmtpEmailSender({self.config!r})"

    def build(
        self, *, to: str, subject: str, text: str, html: str | None, idempotency_key: str
    ) -> EmailMessage:
        """The message :meth:`send` sends (``multipart/alternative`` when ``html`` is given)."""
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = _parse_address(to)
        message["Subject"] = subject
        message["Message-ID"] = message_id(idempotency_key, self._id_domain)
        message[IDEMPOTENCY_HEADER] = idempotency_key
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    async def send(
        self, *, to: str, subject: str, text: str, html: str | None, idempotency_key: str
    ) -> str:
        """Send through the relay; returns the ``Message-ID`` (stable for a given key)."""
        message = self.build(
            to=to, subject=subject, text=text, html=html, idempotency_key=idempotency_key
        )
        c = self.config
        try:
            await aiosmtplib.send(
                message,
                hostname=c.host,
                port=c.port,
                username=c.username,
                password=c.password,
                use_tls=c.tls == "implicit",
                start_tls=c.tls == "starttls",
                tls_context=self._tls_context,
                timeout=c.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients})
            detail = f"the relay at {c.host}:{c.port} refused {to!r}: " + "; ".join(
                f"{r.code} {r.message}" for r in exc.recipients
            )
            code = ",".join(str(n) for n in codes)
            if all(400 <= n < 500 for n in codes):
                raise RetryableFailure(CHANNEL, detail, code=code) from exc
            raise PermanentFailure(CHANNEL, detail, code=code) from exc
        except aiosmtplib.SMTPResponseException as exc:
            detail = f"the relay at {c.host}:{c.port} answered {exc.code} {exc.message}"
            # SMTP's own split: 4yz is a transient refusal, 5yz a permanent one.
            if 400 <= exc.code < 500:
                raise RetryableFailure(CHANNEL, detail, code=str(exc.code)) from exc
            raise PermanentFailure(CHANNEL, detail, code=str(exc.code)) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            detail = f"could not send through {c.host}:{c.port}: {type(exc).__name__}: {exc}"
            raise RetryableFailure(CHANNEL, detail) from exc
        return str(message["Message-ID"])


def message_id(idempotency_key: str, domain: str) -> str:
    """A ``Message-ID`` that is the same for the same key: ``<key@domain>``.

    Keys that are not valid on the left of an address (spaces, ``@``, ...) are replaced by
    their SHA-256, so the id stays stable and well-formed.
    """
    left = idempotency_key
    if not _ID_LEFT.match(left) or len(left) > 128:
        left = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"<{left}@{domain}>"


def _parse_address(value: str) -> Address:
    """``Name <user@host>`` or ``user@host`` as an :class:`Address`; refuses anything else."""
    message = EmailMessage()
    try:
        message["To"] = value
        addresses = message["To"].addresses
    except (ValueError, IndexError) as exc:
        raise PermanentFailure(CHANNEL, f"expected an email address, got {value!r}") from exc
    if len(addresses) != 1 or not addresses[0].domain:
        raise PermanentFailure(CHANNEL, f"expected one email address, got {value!r}")
    address: Address = addresses[0]
    return address
