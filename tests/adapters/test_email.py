"""The SMTP email sender against a real aiosmtpd server: plain, STARTTLS, implicit TLS, AUTH."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from aiosmtpd.smtp import SMTP, Envelope, Session

from adapters.email import IDEMPOTENCY_HEADER, SmtpConfig, SmtpEmailSender, message_id
from adapters.errors import PermanentFailure, RetryableFailure
from tests.adapters.peers import SmtpSink, free_port

SENDER = "Acme deliveries <deliveries@acme.example>"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority for the test servers."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    """The CA's certificate as a PEM file, as an operator would configure it."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server TLS context with a certificate for 127.0.0.1 signed by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def _sink(**kwargs: object) -> Iterator[SmtpSink]:
    sink = SmtpSink(**kwargs)  # type: ignore[arg-type]
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def plain_sink() -> Iterator[SmtpSink]:
    """An SMTP server without TLS."""
    yield from _sink()


async def _send(sender: SmtpEmailSender, key: str = "notif-42.sms") -> str:
    return await sender.send(
        to="Ann Customer <ann@example.org>",
        subject="Your parcel is on its way",
        text="Track it: https://t.example/abc",
        html='<p><a href="https://t.example/abc">Track your parcel</a></p>',
        idempotency_key=key,
    )


async def test_plain_message_has_both_parts_and_the_idempotency_ids(plain_sink: SmtpSink) -> None:
    """A plain send delivers a multipart/alternative mail whose Message-ID derives from the key."""
    async with SmtpEmailSender(
        SmtpConfig(host="127.0.0.1", port=plain_sink.port, sender=SENDER, tls="none")
    ) as sender:
        provider_id = await _send(sender)
        assert provider_id == "<notif-42.sms@acme.example>"
        [got] = plain_sink.received
        assert got.rcpt_tos == ["ann@example.org"]
        assert got.mail_from == "deliveries@acme.example"
        m = got.message
        assert m["Message-ID"] == provider_id
        assert m[IDEMPOTENCY_HEADER] == "notif-42.sms"
        assert m["Subject"] == "Your parcel is on its way"
        assert m.get_content_type() == "multipart/alternative"
        text = m.get_body(preferencelist=("plain",))
        html = m.get_body(preferencelist=("html",))
        assert text is not None
        assert "https://t.example/abc" in text.get_content()
        assert html is not None
        assert '<a href="https://t.example/abc">' in html.get_content()


async def test_sending_twice_gives_the_same_message_id(plain_sink: SmtpSink) -> None:
    """Two sends with one key carry one Message-ID, so the receiver can drop the duplicate."""
    async with SmtpEmailSender(
        SmtpConfig(host="127.0.0.1", port=plain_sink.port, sender=SENDER, tls="none")
    ) as sender:
        first, second = await _send(sender), await _send(sender)
        assert first == second
        assert [r.message["Message-ID"] for r in plain_sink.received] == [first, first]


async def test_text_only_message_is_not_multipart(plain_sink: SmtpSink) -> None:
    """Without HTML the message is a single text/plain part."""
    async with SmtpEmailSender(
        SmtpConfig(host="127.0.0.1", port=plain_sink.port, sender=SENDER, tls="none")
    ) as sender:
        await sender.send(
            to="ann@example.org", subject="s", text="hello", html=None, idempotency_key="k"
        )
        assert plain_sink.received[0].message.get_content_type() == "text/plain"


@pytest.mark.parametrize(
    ("to", "failure", "code"),
    [("x@nowhere.example", PermanentFailure, "550"), ("x@busy.example", RetryableFailure, "451")],
)
async def test_refused_recipient(
    plain_sink: SmtpSink, to: str, failure: type[Exception], code: str
) -> None:
    """A recipient refused with 5xx is a permanent failure, with 4xx a retryable one."""
    async with SmtpEmailSender(
        SmtpConfig(host="127.0.0.1", port=plain_sink.port, sender=SENDER, tls="none")
    ) as sender:
        with pytest.raises(failure) as info:
            await sender.send(to=to, subject="s", text="t", html=None, idempotency_key="k")
        assert getattr(info.value, "code", None) == code
        assert plain_sink.received == []


async def test_starttls_with_authentication(server_context: ssl.SSLContext, ca_file: Path) -> None:
    """STARTTLS upgrades the connection before AUTH, and the server sees the logged-in user."""
    for sink in _sink(tls="starttls", server_context=server_context, users={"acme": "s3cret"}):
        config = SmtpConfig(
            host="127.0.0.1",
            port=sink.port,
            sender=SENDER,
            tls="starttls",
            username="acme",
            password="s3cret",
            ca_file=ca_file,
        )
        async with SmtpEmailSender(config) as sender:
            await _send(sender)
        [got] = sink.received
        assert got.login == "acme"
        assert got.message[IDEMPOTENCY_HEADER] == "notif-42.sms"


async def test_wrong_password_is_a_permanent_failure(
    server_context: ssl.SSLContext, ca_file: Path
) -> None:
    """A 535 authentication refusal is permanent and nothing is delivered."""
    for sink in _sink(tls="starttls", server_context=server_context, users={"acme": "s3cret"}):
        config = SmtpConfig(
            host="127.0.0.1",
            port=sink.port,
            sender=SENDER,
            username="acme",
            password="wrong",
            ca_file=ca_file,
        )
        with pytest.raises(PermanentFailure) as info:
            async with SmtpEmailSender(config) as sender:
                await _send(sender)
        assert info.value.code == "535"
        assert sink.received == []


async def test_implicit_tls(server_context: ssl.SSLContext, ca_file: Path) -> None:
    """Implicit TLS (smtps) delivers the message over a connection that is TLS from the start."""
    for sink in _sink(tls="implicit", server_context=server_context):
        config = SmtpConfig(
            host="127.0.0.1", port=sink.port, sender=SENDER, tls="implicit", ca_file=ca_file
        )
        async with SmtpEmailSender(config) as sender:
            await _send(sender)
        assert len(sink.received) == 1


async def test_untrusted_certificate_is_refused(server_context: ssl.SSLContext) -> None:
    """A relay whose certificate the system CAs do not trust is not sent to (retryable)."""
    for sink in _sink(tls="starttls", server_context=server_context):
        config = SmtpConfig(host="127.0.0.1", port=sink.port, sender=SENDER)
        with pytest.raises(RetryableFailure):
            async with SmtpEmailSender(config) as sender:
                await _send(sender)
        assert sink.received == []


async def test_no_server_is_a_retryable_failure() -> None:
    """A relay that does not answer is a retryable failure."""
    config = SmtpConfig(
        host="127.0.0.1", port=free_port(), sender=SENDER, tls="none", timeout_s=5.0
    )
    with pytest.raises(RetryableFailure):
        async with SmtpEmailSender(config) as sender:
            await _send(sender)


@dataclass
class CountingSink(SmtpSink):
    """An SMTP server that counts the messages each client connection carried, and drops a
    connection as told: closed right after its ``close_after``-th accepted message; at the next
    ``MAIL`` once it carried ``drop_after`` messages, without an answer; or answered ``421``
    (closing) at ``MAIL`` once it carried ``refuse_after`` messages."""

    close_after: int | None = None
    drop_after: int | None = None
    refuse_after: int | None = None
    per_connection: Counter[str] = field(default_factory=Counter)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        transport = server.transport
        assert isinstance(transport, asyncio.Transport)
        if (
            self.drop_after is not None
            and self.per_connection[repr(session.peer)] >= self.drop_after
        ):
            transport.abort()  # gone before answering: the client finds out only now
            return "421 4.3.2 never written"
        if self.refuse_after is not None and (
            self.per_connection[repr(session.peer)] >= self.refuse_after
        ):
            asyncio.get_running_loop().call_soon(transport.close)
            return "421 4.3.2 Service shutting down, closing channel"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        self.per_connection[repr(session.peer)] += 1
        if (
            self.close_after is not None
            and self.per_connection[repr(session.peer)] >= self.close_after
        ):
            transport = server.transport
            assert transport is not None
            # After the answer is written: the client saw the message accepted, then the relay
            # went away while the connection sat in the pool.
            asyncio.get_running_loop().call_soon(transport.close)
        return answer


def _counting(**kwargs: object) -> Iterator[CountingSink]:
    sink = CountingSink(**kwargs)  # type: ignore[arg-type]
    sink.start()
    yield sink
    sink.stop()


def _plain(port: int, **kwargs: object) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, sender=SENDER, tls="none", **kwargs)  # type: ignore[arg-type]


def _keys(sink: SmtpSink) -> list[str]:
    return sorted(str(r.message[IDEMPOTENCY_HEADER]) for r in sink.received)


async def test_several_messages_go_over_one_connection() -> None:
    """Messages sent one after another reuse one connection instead of opening one each."""
    for sink in _counting():
        async with SmtpEmailSender(_plain(sink.port)) as sender:
            for n in range(5):
                await _send(sender, key=f"k{n}")
        assert _keys(sink) == [f"k{n}" for n in range(5)]
        assert list(sink.per_connection.values()) == [5]


async def test_concurrent_sends_use_at_most_the_configured_connections() -> None:
    """Twelve messages sent at once travel over no more than ``connections`` connections."""
    for sink in _counting():
        async with SmtpEmailSender(_plain(sink.port, connections=3)) as sender:
            await asyncio.gather(*(_send(sender, key=f"k{n:02}") for n in range(12)))
        assert _keys(sink) == [f"k{n:02}" for n in range(12)]
        assert len(sink.per_connection) <= 3
        assert sum(sink.per_connection.values()) == 12


async def test_a_connection_the_relay_closed_is_reopened_and_nothing_is_lost() -> None:
    """When the relay closes a kept connection, the next message goes over a new one and every
    message arrives exactly once."""
    for sink in _counting(close_after=2):
        async with SmtpEmailSender(_plain(sink.port)) as sender:
            for n in range(6):
                await _send(sender, key=f"k{n}")
                await asyncio.sleep(0.05)  # let the close reach the client, as in a real pause
        assert _keys(sink) == [f"k{n}" for n in range(6)]
        assert sorted(sink.per_connection.values()) == [2, 2, 2]


async def test_a_dropped_connection_found_only_when_sending_is_reopened() -> None:
    """A kept connection whose close the client has not yet noticed fails on use; the message
    is sent again at once over a new connection, and none is lost."""
    for sink in _counting(drop_after=2):
        async with SmtpEmailSender(_plain(sink.port)) as sender:
            for n in range(6):
                await _send(sender, key=f"k{n}")
        assert _keys(sink) == [f"k{n}" for n in range(6)]
        assert sorted(sink.per_connection.values()) == [2, 2, 2]


async def test_a_421_on_a_kept_connection_moves_the_message_to_a_new_one() -> None:
    """A relay answering 421 (closing) to a kept connection's next message does not fail the
    message: it goes over a new connection."""
    for sink in _counting(refuse_after=3):
        async with SmtpEmailSender(_plain(sink.port)) as sender:
            for n in range(7):
                await _send(sender, key=f"k{n}")
        assert _keys(sink) == [f"k{n}" for n in range(7)]
        assert sorted(sink.per_connection.values()) == [1, 3, 3]


async def test_a_421_on_a_new_connection_is_a_retryable_failure() -> None:
    """A relay that answers 421 on a fresh connection fails the message for now (retryable)."""
    for sink in _counting(refuse_after=0):
        async with SmtpEmailSender(_plain(sink.port)) as sender:
            with pytest.raises(RetryableFailure) as info:
                await _send(sender)
        assert info.value.code == "421"
        assert sink.received == []


async def test_a_refused_recipient_keeps_the_connection_for_the_next_message() -> None:
    """After a recipient is refused the connection is reset and carries the next message."""
    for sink in _counting():
        async with SmtpEmailSender(_plain(sink.port)) as sender:
            await _send(sender, key="first")
            with pytest.raises(PermanentFailure):
                await sender.send(
                    to="x@nowhere.example", subject="s", text="t", html=None, idempotency_key="k"
                )
            await _send(sender, key="second")
        assert _keys(sink) == ["first", "second"]
        assert list(sink.per_connection.values()) == [2]


async def test_a_connection_is_retired_after_its_message_limit() -> None:
    """With ``messages_per_connection`` 2, five messages take three connections."""
    for sink in _counting():
        async with SmtpEmailSender(_plain(sink.port, messages_per_connection=2)) as sender:
            for n in range(5):
                await _send(sender, key=f"k{n}")
        assert sorted(sink.per_connection.values()) == [1, 2, 2]


async def test_an_idle_connection_is_not_reused() -> None:
    """A connection unused for longer than ``idle_close_s`` is closed and a new one opened."""
    for sink in _counting():
        async with SmtpEmailSender(_plain(sink.port, idle_close_s=0.0)) as sender:
            for n in range(3):
                await _send(sender, key=f"k{n}")
        assert list(sink.per_connection.values()) == [1, 1, 1]


async def test_starttls_connection_is_reused_with_its_login(
    server_context: ssl.SSLContext, ca_file: Path
) -> None:
    """Over STARTTLS with AUTH, later messages reuse the upgraded, logged-in connection."""
    for sink in _counting(tls="starttls", server_context=server_context, users={"acme": "pw"}):
        config = SmtpConfig(
            host="127.0.0.1",
            port=sink.port,
            sender=SENDER,
            username="acme",
            password="pw",
            ca_file=ca_file,
        )
        async with SmtpEmailSender(config) as sender:
            for n in range(3):
                await _send(sender, key=f"k{n}")
        assert [r.login for r in sink.received] == ["acme"] * 3
        assert list(sink.per_connection.values()) == [3]


def test_a_pool_of_no_connections_is_refused() -> None:
    """A configuration with no connections or no messages per connection is a clear error."""
    with pytest.raises(ValueError, match="connections"):
        SmtpEmailSender(_plain(25, connections=0))


async def test_non_ascii_names_subject_and_text_arrive_intact(plain_sink: SmtpSink) -> None:
    """Umlauts in the names, subject and both parts arrive as written; a line break in the
    subject becomes a space (no header can be added through it)."""
    config = SmtpConfig(
        host="127.0.0.1", port=plain_sink.port, sender="Lieferdienst Müller <d@acme.example>"
    )
    async with SmtpEmailSender(dataclasses.replace(config, tls="none")) as sender:
        await sender.send(
            to="Jürgen Groß <jg@example.org>",
            subject="Unterwegs: Bestellung n-4\nBcc: evil@example.org",
            text="Grüße — Ihr Paket kommt.",
            html="<p>Grüße — <b>Ihr Paket</b> kommt.</p>",
            idempotency_key="k-ä".encode().hex(),
        )
    [got] = plain_sink.received
    m = got.message
    assert m["From"] == "Lieferdienst Müller <d@acme.example>"
    assert m["To"] == "Jürgen Groß <jg@example.org>"
    assert m["Subject"] == "Unterwegs: Bestellung n-4 Bcc: evil@example.org"
    assert m["Bcc"] is None
    assert got.rcpt_tos == ["jg@example.org"]
    text, html = m.get_body(("plain",)), m.get_body(("html",))
    assert text is not None
    assert text.get_content().strip() == "Grüße — Ihr Paket kommt."
    assert html is not None
    assert "<b>Ihr Paket</b>" in html.get_content()


async def test_a_long_message_id_stays_on_its_header_line(plain_sink: SmtpSink) -> None:
    """A Message-ID longer than a folded line (a hashed key) reaches the receiver unchanged."""
    async with SmtpEmailSender(_plain(plain_sink.port)) as sender:
        provider_id = await _send(sender, key="order 7 @ en route")
    assert len(provider_id) > 78
    assert plain_sink.received[0].message["Message-ID"] == provider_id


def test_an_address_that_is_not_ascii_is_built_for_smtputf8() -> None:
    """A recipient whose address is not ASCII gets the modern message class, which aiosmtplib
    sends with SMTPUTF8."""
    sender = SmtpEmailSender(SmtpConfig(host="h", sender=SENDER, tls="none"))
    message = sender.build(
        to="jürgen@exämple.org", subject="s", text="t", html=None, idempotency_key="k"
    )
    assert isinstance(message, EmailMessage)
    assert message["To"] == "jürgen@exämple.org"


def test_password_is_not_in_the_repr() -> None:
    """Neither the config's nor the sender's repr shows the password."""
    config = SmtpConfig(host="h", sender=SENDER, username="u", password="hunter2")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in repr(SmtpEmailSender(config))


def test_bad_recipient_is_permanent() -> None:
    """A recipient that is not an address is refused before any connection."""
    sender = SmtpEmailSender(SmtpConfig(host="h", sender=SENDER, tls="none"))
    with pytest.raises(PermanentFailure):
        sender.build(to="not an address", subject="s", text="t", html=None, idempotency_key="k")


def test_message_id_of_an_awkward_key_is_stable_and_well_formed() -> None:
    """Keys with spaces or @ become a hash, the same each time."""
    a = message_id("order 7 @ en route", "acme.example")
    assert a == message_id("order 7 @ en route", "acme.example")
    assert " " not in a
    assert a.count("@") == 1
