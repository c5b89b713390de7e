"""The SMTP email sender against a real aiosmtpd server: plain, STARTTLS, implicit TLS, AUTH."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

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
    sender = SmtpEmailSender(
        SmtpConfig(host="127.0.0.1", port=plain_sink.port, sender=SENDER, tls="none")
    )
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
    sender = SmtpEmailSender(
        SmtpConfig(host="127.0.0.1", port=plain_sink.port, sender=SENDER, tls="none")
    )
    first, second = await _send(sender), await _send(sender)
    assert first == second
    assert [r.message["Message-ID"] for r in plain_sink.received] == [first, first]


async def test_text_only_message_is_not_multipart(plain_sink: SmtpSink) -> None:
    """Without HTML the message is a single text/plain part."""
    sender = SmtpEmailSender(
        SmtpConfig(host="127.0.0.1", port=plain_sink.port, sender=SENDER, tls="none")
    )
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
    sender = SmtpEmailSender(
        SmtpConfig(host="127.0.0.1", port=plain_sink.port, sender=SENDER, tls="none")
    )
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
        await _send(SmtpEmailSender(config))
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
            await _send(SmtpEmailSender(config))
        assert info.value.code == "535"
        assert sink.received == []


async def test_implicit_tls(server_context: ssl.SSLContext, ca_file: Path) -> None:
    """Implicit TLS (smtps) delivers the message over a connection that is TLS from the start."""
    for sink in _sink(tls="implicit", server_context=server_context):
        config = SmtpConfig(
            host="127.0.0.1", port=sink.port, sender=SENDER, tls="implicit", ca_file=ca_file
        )
        await _send(SmtpEmailSender(config))
        assert len(sink.received) == 1


async def test_untrusted_certificate_is_refused(server_context: ssl.SSLContext) -> None:
    """A relay whose certificate the system CAs do not trust is not sent to (retryable)."""
    for sink in _sink(tls="starttls", server_context=server_context):
        config = SmtpConfig(host="127.0.0.1", port=sink.port, sender=SENDER)
        with pytest.raises(RetryableFailure):
            await _send(SmtpEmailSender(config))
        assert sink.received == []


async def test_no_server_is_a_retryable_failure() -> None:
    """A relay that does not answer is a retryable failure."""
    config = SmtpConfig(
        host="127.0.0.1", port=free_port(), sender=SENDER, tls="none", timeout_s=5.0
    )
    with pytest.raises(RetryableFailure):
        await _send(SmtpEmailSender(config))


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
