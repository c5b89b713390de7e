"""Email to customers and dispatchers: an :class:`EmailSender` interface and its SMTP sender.

The SMTP sender speaks to a relay with STARTTLS, implicit TLS (``smtps``, usually port 465) or,
for a local sink only, plain text; it authenticates when a username is configured. Each message
is ``multipart/alternative`` (text, then HTML) built with the standard library's
:class:`~email.message.EmailMessage`. The caller's idempotency key becomes the ``Message-ID``
(and an ``X-Lastmile-Idempotency-Key`` header), so a message sent twice by an at-least-once sender
carries the same id both times and receivers can drop the duplicate.

**Connections are kept and reused.** Opening one costs a TCP handshake, the greeting, ``EHLO``,
for STARTTLS a TLS handshake and a second ``EHLO``, and ``AUTH``: more CPU and round trips than
the message itself. So the sender keeps a small pool per relay (``SmtpConfig.connections``, as
many as a sender pass sends at once) and sends message after message over each (``MAIL``,
``RCPT``, ``DATA``). A connection is closed after ``messages_per_connection`` messages or
``idle_close_s`` unused (relays drop idle clients, commonly after a few minutes), and whenever it
fails in a way that leaves its state unknown. A reused connection that the relay has closed
meanwhile (a dropped socket, or ``421``: the relay is closing the channel) is not the message's
failure: the message is sent again at once over a new connection. Only a failure on a fresh
connection is the message's, classified as before (4yz and network errors retryable, 5yz
permanent). At worst the relay accepted the message and the connection dropped before its
answer reached us: the message is then sent twice with the same ``Message-ID``, which the
at-least-once sender allows anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import re
import secrets
import ssl
import time
from dataclasses import dataclass, field
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr, parseaddr
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosmtplib

from adapters.errors import PermanentFailure, RetryableFailure

CHANNEL = "email"
IDEMPOTENCY_HEADER = "X-Lastmile-Idempotency-Key"

_WIRE = compat32.clone(max_line_length=998, linesep="\r\n")
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP  # readable in the source, unlike the default base64
_UTF8.header_encoding = QP

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
    connections: int = 20
    """At most this many connections to the relay at once (the sender's batch, by default)."""
    messages_per_connection: int = 100
    """A connection is closed (``QUIT``) after this many messages; relays limit it too."""
    idle_close_s: float = 30.0
    """A connection unused for this long is closed rather than reused."""


@dataclass(slots=True)
class _Connection:
    """One open connection to the relay, and how much it has been used."""

    client: aiosmtplib.SMTP
    messages: int = 0
    idle_since: float = 0.0


_CLOSING = 421
"""SMTP's "service not available, closing transmission channel"."""


class SmtpEmailSender:
    """An :class:`EmailSender` over SMTP with aiosmtplib, over a small pool of kept connections
    (see the module's docstring). Call :meth:`aclose` when done, to ``QUIT`` them."""

    def __init__(self, config: SmtpConfig) -> None:
        if config.connections < 1 or config.messages_per_connection < 1:
            raise ValueError(
                "expected connections and messages_per_connection of at least 1, got "
                f"{config.connections} and {config.messages_per_connection}"
            )
        self.config = config
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._from = _parse_address(config.sender)
        self._id_domain = config.message_id_domain or self._from.domain or "localhost"
        self._tls_context: ssl.SSLContext | None = None
        if config.tls != "none":
            self._tls_context = ssl.create_default_context(
                cafile=str(config.ca_file) if config.ca_file is not None else None
            )

    def __repr__(self) -> str:
        return f"SmtpEmailSender({self.config!r})"

    async def __aenter__(self) -> SmtpEmailSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def build(
        self, *, to: str, subject: str, text: str, html: str | None, idempotency_key: str
    ) -> Message:
        """The message :meth:`send` sends (``multipart/alternative`` when ``html`` is given).

        Built with the standard library's MIME classes (the ``compat32`` policy), which cost a
        twentieth of :class:`~email.message.EmailMessage`'s parsing of every header (a
        millisecond per message); :class:`~email.message.EmailMessage` only where an address is
        not ASCII (sent with ``SMTPUTF8``). Line breaks in the subject become spaces, so no text
        can add a header."""
        recipient = _parse_address(to)
        subject = " ".join(subject.split())
        if "\r" in idempotency_key or "\n" in idempotency_key:
            raise PermanentFailure(CHANNEL, f"expected a key on one line, got {idempotency_key!r}")
        if not (self._from.addr_spec.isascii() and recipient.addr_spec.isascii()):
            return self._build_international(recipient, subject, text, html, idempotency_key)
        message: Message
        if html is None:
            message = _text_part(text, "plain")
        else:
            message = MIMEMultipart("alternative", boundary=_boundary(text, html))
            message.attach(_text_part(text, "plain"))
            message.attach(_text_part(html, "html"))
        message["From"] = _format_address(self._from)
        message["To"] = _format_address(recipient)
        # compat32 takes a Header for an encoded word; typeshed types its headers as str.
        subject_header: Any = subject if subject.isascii() else Header(subject, _UTF8)
        message["Subject"] = subject_header
        message["Message-ID"] = message_id(idempotency_key, self._id_domain)
        message[IDEMPOTENCY_HEADER] = idempotency_key
        return message

    def _build_international(
        self, recipient: Address, subject: str, text: str, html: str | None, key: str
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = recipient
        message["Subject"] = subject
        message["Message-ID"] = message_id(key, self._id_domain)
        message[IDEMPOTENCY_HEADER] = key
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
        if self._slots is None:
            self._slots = asyncio.Semaphore(c.connections)
        try:
            async with self._slots:
                await self._send_pooled(message)
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

    async def aclose(self) -> None:
        """``QUIT`` and close every kept connection; the sender may still be used afterwards
        (it opens new ones)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await self._quit(connection)

    async def _send_pooled(self, message: Message) -> None:
        """Send over a kept connection, or a new one; a kept one the relay has dropped is
        replaced and the message sent again over the new one. Raises aiosmtplib's errors (or
        ``OSError``) for the message's own failure."""
        connection = self._take()
        if connection is not None:
            try:
                await self._transact(connection, message)
                return
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                # Dropped while kept: not the message's fault, so a new connection at once. A
                # timeout is not retried here: a second one would outlast the sender's lease.
                pass
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code != _CLOSING:
                    raise
        connection = await self._open()
        await self._transact(connection, message)

    async def _transact(self, connection: _Connection, message: Message) -> None:
        """One message over ``connection``; the connection is kept for the next message when it
        is still in a known state (accepted, or refused with an answer that is not ``421``),
        closed otherwise."""
        keep = False
        try:
            if isinstance(message, EmailMessage):  # an address that is not ASCII: SMTPUTF8
                await connection.client.send_message(message)
            else:
                await connection.client.sendmail(
                    _addr_spec(message["From"]), [_addr_spec(message["To"])], _flatten(message)
                )
            keep = True
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
            # aiosmtplib has sent RSET after a refusal, so the connection is ready for the next
            # message, unless the relay said it is closing it.
            code = getattr(exc, "code", None)
            keep = code != _CLOSING
            raise
        finally:
            connection.messages += 1
            if keep and connection.client.is_connected:
                await self._give_back(connection)
            else:
                connection.client.close()

    def _take(self) -> _Connection | None:
        """The most recently used kept connection that is still open and fresh, if any."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.client.is_connected and now - connection.idle_since < (
                self.config.idle_close_s
            ):
                return connection
            connection.client.close()
        return None

    async def _give_back(self, connection: _Connection) -> None:
        if connection.messages >= self.config.messages_per_connection:
            await self._quit(connection)
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    async def _open(self) -> _Connection:
        """A new connection, greeted, upgraded to TLS and logged in as configured."""
        c = self.config
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            username=c.username,
            password=c.password,
            use_tls=c.tls == "implicit",
            start_tls=c.tls == "starttls",
            tls_context=self._tls_context,
            timeout=c.timeout_s,
        )
        try:
            await client.connect()
        except BaseException:
            client.close()
            raise
        return _Connection(client=client)

    @staticmethod
    async def _quit(connection: _Connection) -> None:
        """Say goodbye politely; a relay that has gone already needs nothing more."""
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await connection.client.quit()
        connection.client.close()


def message_id(idempotency_key: str, domain: str) -> str:
    """A ``Message-ID`` that is the same for the same key: ``<key@domain>``.

    Keys that are not valid on the left of an address (spaces, ``@``, ...) are replaced by
    their SHA-256, so the id stays stable and well-formed.
    """
    left = idempotency_key
    if not _ID_LEFT.match(left) or len(left) > 128:
        left = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"<{left}@{domain}>"


def _flatten(message: Message) -> bytes:
    """The message as sent: compat32 with lines up to RFC 5322's 998 characters, so that a long
    ``Message-ID`` stays on its header's line rather than being folded onto the next."""
    out = io.BytesIO()
    BytesGenerator(out, policy=_WIRE).flatten(message)
    return out.getvalue()


def _boundary(*texts: str) -> str:
    """A MIME boundary found in none of ``texts``. Chosen here because the generator's own
    choice compiles a new regular expression for every message."""
    while True:
        boundary = "=_lastmile_" + secrets.token_hex(16)
        if not any(boundary in text for text in texts):
            return boundary


def _addr_spec(header: str) -> str:
    return parseaddr(header)[1]


def _text_part(text: str, subtype: str) -> MIMEText:
    """One text part: 7-bit when ASCII, else UTF-8 in quoted-printable."""
    if text.isascii():
        return MIMEText(text, subtype, "us-ascii")
    part = MIMEText("", subtype, "utf-8")
    del part["Content-Transfer-Encoding"]
    part.set_payload(text, _UTF8)
    return part


def _format_address(address: Address) -> str:
    """``Name <user@host>`` with a non-ASCII name as an encoded word (the address is ASCII)."""
    if not address.display_name:
        return address.addr_spec
    return formataddr((address.display_name, address.addr_spec), charset=_UTF8)


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
