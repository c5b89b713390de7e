"""The demo mail sink: a local SMTP server (aiosmtpd) that keeps every mail in a Maildir.

``lastmile serve --demo`` starts it when no SMTP relay is configured and points the sender at
it, so a new user sees the mails the simulated day sends (``/demo/mail`` and
``GET /v1/demo/mail``) without configuring anything. It listens on loopback only, accepts any
sender and recipient without authentication, relays nothing, and keeps the newest
:data:`KEEP` messages (older ones are removed as new ones arrive).

The Maildir (one file per message, written atomically through ``tmp/``) is the interface
between the sink, which runs in the ``serve`` process, and whichever API process reads it:
:func:`read_mails` parses it for the page. :func:`prefer_email` makes a demo organisation's
customers hear by email first (the default prefers SMS, which a demo has no provider for).
Nothing here is meant for production mail.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from psycopg import AsyncConnection

from adapters.email import IDEMPOTENCY_HEADER
from schemas.ids import OrgId
from schemas.notifications import NotificationRules
from store.notification_rules import get_rules, put_rules

log = structlog.get_logger(__name__)

KEEP: Final = 1000
"""Messages the sink keeps; the oldest go first."""
MAX_MESSAGE_BYTES: Final = 1024 * 1024
"""Larger messages are refused (552): the sender's mails are a few kilobytes."""
MAX_TEXT_CHARS: Final = 100_000
"""Each body part is cut to this many characters when read for the page."""


class MaildirHandler:
    """aiosmtpd's handler: each accepted message becomes one file of the Maildir ``folder``."""

    def __init__(self, folder: Path, keep: int = KEEP) -> None:
        self.folder = folder
        self.keep = keep
        self.box = mailbox.Maildir(folder, create=True)
        # Messages arriving together are stored in threads of their own; one Maildir object
        # (its table of contents) must not be read by one while another changes it.
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode()
        message = mailbox.MaildirMessage(data)
        message["X-Lastmile-Sink-Received"] = datetime.now(UTC).isoformat()
        message["X-Lastmile-Sink-To"] = ", ".join(envelope.rcpt_tos)
        # Maildir writes are small blocking file writes: off the event loop.
        await asyncio.to_thread(self._store, message)
        return "250 Message accepted (demo sink: kept locally, relayed nowhere)"

    def _store(self, message: mailbox.MaildirMessage) -> None:
        with self._lock:
            self.box.add(message)
            keys = sorted(self.box.keys(), key=arrival_order)
            for key in keys[: max(0, len(keys) - self.keep)]:
                self.box.discard(key)


def arrival_order(key: str) -> tuple[int, int, str]:
    """A sort key of Maildir file names by arrival: Python's Maildir names a message
    ``<seconds>.M<microseconds>P<pid>Q<count>.<host>``."""
    seconds, _, rest = key.partition(".M")
    micros = rest.split("P", 1)[0]
    if seconds.isdigit() and micros.isdigit():
        return int(seconds), int(micros), key
    return 0, 0, key


async def start_mail_sink(
    folder: Path, host: str = "127.0.0.1", port: int = 0, *, keep: int = KEEP
) -> asyncio.Server:
    """Listen for SMTP on ``host:port`` (0: a free port; read it from the server's socket) and
    keep the newest ``keep`` messages in the Maildir ``folder``. Close the returned server to
    stop."""
    handler = MaildirHandler(folder, keep)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="lastmile-demo-sink",
            data_size_limit=MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            loop=loop,
        ),
        host,
        port,
    )
    log.info("demo mail sink listening", host=host, port=sink_port(server), folder=str(folder))
    return server


def sink_port(server: asyncio.Server) -> int:
    """The port ``server`` listens on."""
    port: int = server.sockets[0].getsockname()[1]
    return port


@dataclass(frozen=True, kw_only=True, slots=True)
class Mail:
    """A kept message, as the page shows it."""

    id: str
    received_at: datetime
    sent_at: datetime | None
    from_: str
    to: str
    subject: str
    text: str | None
    html: str | None
    idempotency_key: str | None
    """``X-Lastmile-Idempotency-Key``: the outbox row the mail was sent for."""


def read_mails(folder: Path, limit: int) -> list[Mail]:
    """The newest ``limit`` messages of the Maildir ``folder``, newest first (none when the
    folder does not exist). Blocking: call it in a thread."""
    if not folder.is_dir():
        return []
    box = mailbox.Maildir(folder, create=False)
    mails = []
    for key in sorted(box.keys(), key=arrival_order, reverse=True)[:limit]:
        try:
            raw = box.get_bytes(key)
        except (KeyError, OSError):  # removed by the sink meanwhile
            continue
        mails.append(_mail(key, raw))
    return mails


def _mail(key: str, raw: bytes) -> Mail:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    text_part = parsed.get_body(preferencelist=("plain",))
    html_part = parsed.get_body(preferencelist=("html",))
    return Mail(
        id=key,
        received_at=_instant(parsed.get("X-Lastmile-Sink-Received")),
        sent_at=_sent(parsed.get("Date")),
        from_=str(parsed.get("From", "")),
        to=str(parsed.get("X-Lastmile-Sink-To") or parsed.get("To", "")),
        subject=str(parsed.get("Subject", "")),
        text=_content(text_part),
        html=_content(html_part),
        idempotency_key=_header(parsed, IDEMPOTENCY_HEADER),
    )


def _content(part: object) -> str | None:
    if not isinstance(part, EmailMessage):
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        return None
    return content[:MAX_TEXT_CHARS] if isinstance(content, str) else None


def _header(message: EmailMessage, name: str) -> str | None:
    value = message.get(name)
    return None if value is None else str(value).strip()


def _instant(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def _sent(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


async def prefer_email(
    conn: AsyncConnection[Any], org_id: OrgId, defaults: NotificationRules
) -> bool:
    """Make a demo organisation's customers hear by email first, so its mail reaches the sink
    (the default prefers SMS, which a demo has no provider for). Only an organisation that never
    set its rules is changed; True when it was."""
    if await get_rules(conn, org_id) is not None:
        return False
    doc = msgspec.structs.replace(defaults.doc(), customer_channels=["email", "sms"])
    await put_rules(conn, org_id, doc)
    return True
